#!/usr/bin/env bash
# Install the Debian 12 packages pocketvm's build, guest kit and tests need;
# with --bench also the peers and tools of bench/ (QEMU).
# Does nothing when they are all present.
set -euo pipefail
pkgs=(
  build-essential meson ninja-build pkg-config clang
  zlib1g-dev liblzma-dev libzstd-dev liblz4-dev
  linux-source-6.1 busybox-static bc flex bison libelf-dev libssl-dev cpio xz-utils
  e2fsprogs python3 zstd lz4 gzip
  python3-matplotlib
)
if [ "${1:-}" = --bench ]; then
  pkgs+=(qemu-system-x86 qemu-utils)  # the peer in bench/boot and bench/snapshot
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
