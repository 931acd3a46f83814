#!/usr/bin/env bash
# Builds rme's Debian packages with CPack (build/rme_<v>_<arch>.deb: inference, conversion,
# refactoring, serving, the shipped models; build/rme-train_<v>_<arch>.deb: libtorch training),
# then proves the first on a fresh Debian 12: debootstrap a minimal bookworm root, install the
# package there with apt (its dependencies come from Debian, as dpkg-shlibdeps listed them), and
# run `rme generate` on the shipped model from / — no checkout, no build tree in that root.
# Usage: scripts/package-deb.sh [--no-check | --extract]   (as root)
#   default    the fresh-root check above (downloads ~60 MB from Debian; a few minutes)
#   --extract  only unpack the package (dpkg -x) into a temporary folder and run that `rme
#              generate rme-mini` from / (no network; what CI runs)
#   --no-check only build the packages
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
[[ ${1:-} == "" ]] && ! command -v debootstrap >/dev/null && need+=(debootstrap)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/build.sh
(cd build && cpack -G DEB >/dev/null)
deb=$(ls build/rme_*.deb)
ls -l build/*.deb
dpkg-deb --field "$deb" Package Version Depends Recommends
[[ ${1:-} == --no-check ]] && exit 0
generate='rme generate rme-mini -p "Once upon a time" -n 40 --temp 0 2>/dev/null'
check_text() {  # the prompt and a continuation of it
  echo "$1"
  [[ $1 == *"Once upon a time"* && ${#1} -gt 60 ]] || { echo "package-deb: no text generated" >&2; exit 1; }
}
if [[ ${1:-} == --extract ]]; then
  dir=$(mktemp -d /tmp/rme-deb-x.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  dpkg -x "$deb" "$dir"
  out=$(cd / && env -u RME_DATA_DIR PATH="$dir/usr/bin:$PATH" sh -c "$generate")
  check_text "$out"
  echo "package-deb: $(basename "$deb") unpacked elsewhere generates from / with its own data"
  exit 0
fi

root=$(mktemp -d /tmp/rme-deb-root.XXXXXX)
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
echo "package-deb: debootstrap bookworm into $root"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/"
chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq /tmp/$(basename "$deb") >/dev/null"
out=$(chroot "$root" sh -c "cd / && rme --version && $generate")
check_text "$out"
echo "package-deb: $(basename "$deb") installs on a fresh Debian 12 and generates from /"
