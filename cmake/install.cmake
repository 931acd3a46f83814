# Install rules and the Debian packages (CPack): `cmake --install build --prefix P` puts the
# binaries in P/bin and the shipped models and text in P/share/rme/data, where an installed `rme`
# finds them (apps/rme/common.cc: data_dir()); `cpack` in the build folder writes rme_*.deb
# (inference) and, with libtorch, rme-train_*.deb (training). scripts/package-deb.sh builds both
# and checks the first in a fresh Debian 12 root.
include(GNUInstallDirs)
if(TARGET rme)
  install(TARGETS rme RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT rme)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/data/ DESTINATION ${CMAKE_INSTALL_DATADIR}/rme/data
    COMPONENT rme)
  install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}
    COMPONENT rme)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
    COMPONENT rme)
endif()
if(TARGET rme-train)
  install(TARGETS rme-train RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT train)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME rme)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "rme developers <rme@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Read-ME: refactor a dense Llama into a Mixture-of-Experts with a decoupled router, and serve it")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Runtime dependencies from the binaries' shared libraries (dpkg-shlibdeps, from dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_RME_PACKAGE_NAME rme)
# OpenBLAS is dlopen'ed for large f32 products (kernels/blas.cc): faster, not required.
set(CPACK_DEBIAN_RME_PACKAGE_RECOMMENDS libopenblas0-pthread)
set(CPACK_DEBIAN_TRAIN_PACKAGE_NAME rme-train)
set(CPACK_DEBIAN_TRAIN_PACKAGE_DEPENDS "rme (= ${PROJECT_VERSION})")
set(CPACK_COMPONENT_RME_DESCRIPTION "rme: inference, conversion, Read-ME refactoring and serving")
set(CPACK_COMPONENT_TRAIN_DESCRIPTION "rme-train: libtorch training (rme train|train-router|finetune)")
if(TARGET rme-train)
  set(CPACK_COMPONENTS_ALL rme train)
else()
  set(CPACK_COMPONENTS_ALL rme)
endif()
include(CPack)
