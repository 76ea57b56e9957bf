#!/usr/bin/env bash
# tests/integration/mkdisk.sh — make a small ext4 disk image without root.
#
#   mkdisk.sh [-s SIZE_MIB] [-L LABEL] [-j] OUT.img [FILE|DIR...]
#
# Each FILE or DIR is copied into the image's root directory as `cp -R` would
# (a DIR lands as a subdirectory; write DIR/. to copy its contents instead).
# The file system is filled by `mkfs.ext4 -d` (e2fsprogs), so no mount, loop
# device or root privilege is needed; files keep the invoking user's uid/gid,
# the root directory is owned by 0:0.  The image is sparse; its size defaults
# to the content plus headroom (at least 8 MiB).  No journal unless -j: the
# guest mounts it faster, and test disks do not outlive a test.
#
# The default guest (guest/build.sh) mounts /dev/vda on /mnt at boot.
set -euo pipefail

die() { printf 'mkdisk: error: %s\n' "$*" >&2; exit 1; }
usage() {
	sed -n '4p' "$0" | sed 's/^# *//' >&2
	exit 2
}

size_mib=
label=pocketvm
journal=0
while getopts 's:L:jh' opt; do
	case "$opt" in
	s) size_mib=$OPTARG ;;
	L) label=$OPTARG ;;
	j) journal=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
out=$1
shift

mkfs=$(PATH="$PATH:/sbin:/usr/sbin" command -v mkfs.ext4 || true)
[ -n "$mkfs" ] || die "mkfs.ext4 not found (apt-get install e2fsprogs)"

stage=$(mktemp -d "${TMPDIR:-/tmp}/mkdisk.XXXXXX")
trap 'rm -rf "$stage"' EXIT
for src in "$@"; do
	[ -e "$src" ] || die "$src: no such file or directory"
	cp -R -- "$src" "$stage/"
done

if [ -z "$size_mib" ]; then
	used_kib=$(du -sk "$stage" | cut -f1)
	size_mib=$(((used_kib * 3 / 2 + 1023) / 1024 + 4))
	[ "$size_mib" -ge 8 ] || size_mib=8
fi
case "$size_mib" in '' | *[!0-9]*) die "bad size: $size_mib" ;; esac

features=^has_journal
[ "$journal" = 0 ] || features=has_journal

rm -f -- "$out"
truncate -s "${size_mib}M" -- "$out"
if ! "$mkfs" -q -F -t ext4 -L "$label" -O "$features" -E root_owner=0:0 \
	-d "$stage" -- "$out" "${size_mib}M" 2>"$stage.err"; then
	cat "$stage.err" >&2
	rm -f -- "$out" "$stage.err"
	die "mkfs.ext4 failed (content too large for ${size_mib} MiB? try -s)"
fi
rm -f -- "$stage.err"
