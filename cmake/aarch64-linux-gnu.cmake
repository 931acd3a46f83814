# CMake toolchain: Debian's AArch64 cross compiler, arm64 libraries installed beside the native ones
# (multiarch: /usr/lib/aarch64-linux-gnu), test binaries run through qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# gtest_discover_tests and ctest run the test binaries through this. No -L sysroot: the binaries
# link the multiarch arm64 libraries (libc6:arm64 in /lib/aarch64-linux-gnu), and loading them
# with the cross toolchain's older libc copy (/usr/aarch64-linux-gnu) hangs in pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
# pkg-config: arm64 .pc files (and architecture-independent ones) only.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
