#!/usr/bin/env bash
# shellcheck disable=SC2054 # commas separate QEMU sub-options, not array elements
# guest/qemu-smoke.sh — boot a built guest under QEMU, run commands in its shell.
#
#   guest/qemu-smoke.sh [options] OUTDIR [COMMANDS]
#     -M MACHINE   pc (default) or microvm (no PCI there: no disk)
#     -k KERNEL    vmlinux (default) or bzImage, from OUTDIR
#     -d DISK.img  attach as virtio-blk-pci (pc only); the guest mounts it on /mnt
#     -c CPUS      vCPUs (default 2)
#     -m MIB       memory (default 256)
#     -t SECONDS   give up after this long (default 180)
#     -g           use TCG instead of KVM (e.g. for -k bzImage: the in-guest
#                  decompression takes minutes on interpreted-ring0 KVM)
#     -s           boot OUTDIR/stock (build.sh --stock) with TCG: Debian's
#                  stock kernel does not boot on interpreted-ring0 KVM
#
# A cross-check of the guest kit against a reference VMM, not a pocketvm test.
# Waits for POCKETVM-READY, types COMMANDS and `exit` into the shell (the
# guest then reboots, which ends QEMU), prints the serial transcript and the
# boot time, and exits non-zero when the marker never came or QEMU timed out.
set -euo pipefail

die() { printf 'qemu-smoke: error: %s\n' "$*" >&2; exit 1; }

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
machine=pc kernel=vmlinux disk='' cpus=2 mem=256 limit=180 stock=0 tcg=0
while getopts 'M:k:d:c:m:t:gsh' opt; do
	case "$opt" in
	M) machine=$OPTARG ;;
	k) kernel=$OPTARG ;;
	d) disk=$OPTARG ;;
	c) cpus=$OPTARG ;;
	m) mem=$OPTARG ;;
	t) limit=$OPTARG ;;
	g) tcg=1 ;;
	s) stock=1 ;;
	*) sed -n '5,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || die "usage: qemu-smoke.sh [options] OUTDIR [COMMANDS]"
out=$1
cmds=${2:-}

# -cpu host: QEMU's default model is an AMD CPU without XSAVEERPTR, for which
# Linux restores FPU state through FNCLEX (X86_BUG_FXSAVE_LEAK), which the
# interpreted-ring0 host cannot execute.  arch-capabilities: that MSR cannot
# be set there.
accel=(-enable-kvm -cpu host,-arch-capabilities)
[ "$tcg" = 0 ] || accel=(-accel tcg)
if [ "$stock" = 1 ]; then
	kfile="$out/stock/vmlinuz" initrd="$out/stock/initramfs.cpio"
	cmdline=$(cat "$GUEST_DIR/cmdline-stock.txt")
	accel=(-accel tcg)
else
	kfile="$out/$kernel" initrd="$out/initramfs.cpio"
	cmdline=$(cat "$GUEST_DIR/cmdline.txt")
fi
[ -f "$kfile" ] || die "$kfile missing (run guest/build.sh${stock:+ --stock} $out)"
[ -f "$initrd" ] || die "$initrd missing"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"

case "$machine" in
pc) mach=(-M pc) ;;
# microvm: no ACPI tables (the kernel has no ACPI), so QEMU writes an MP table.
microvm) mach=(-M microvm,acpi=off,pit=on,pic=on,rtc=off,isa-serial=on) ;;
*) die "unknown machine $machine" ;;
esac
devs=()
if [ -n "$disk" ]; then
	[ "$machine" = pc ] || die "-d needs -M pc (virtio-pci)"
	devs=(-drive "file=$disk,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0)
fi

coproc QEMU {
	exec timeout "$limit" qemu-system-x86_64 "${accel[@]}" "${mach[@]}" -m "$mem" -smp "$cpus" \
		-nodefaults -display none -serial stdio -no-reboot \
		-kernel "$kfile" -initrd "$initrd" -append "$cmdline" "${devs[@]}" 2>&1
}
qpid=$QEMU_PID
t0=$(date +%s%N)
ready=0 rebooted=0
while IFS= read -r line <&"${QEMU[0]}"; do
	line=${line%$'\r'}
	printf '%s\n' "$line"
	# microvm has no i8042, so the guest's reboot does not end QEMU there.
	case "$line" in *"reboot: Restarting system"*)
		(sleep 5; kill "$qpid" 2>/dev/null) &
		rebooted=1 ;;
	esac
	if [ "$ready" = 0 ] && [ "$line" = POCKETVM-READY ]; then
		ready=$(($(date +%s%N) - t0))
		printf '%s\nexit\n' "$cmds" >&"${QEMU[1]}"
	fi
done
rc=0
wait "$qpid" || rc=$?
t1=$(date +%s%N)
[ "$rebooted" = 0 ] || [ "$rc" != 143 ] || rc=0
[ "$rc" != 124 ] || die "QEMU still running after ${limit} s"
[ "$ready" != 0 ] || die "no POCKETVM-READY (QEMU exit status $rc)"
printf 'qemu-smoke: POCKETVM-READY after %d.%02d s; QEMU ended after %d.%02d s (status %d)\n' \
	$((ready / 1000000000)) $((ready / 10000000 % 100)) \
	$(((t1 - t0) / 1000000000)) $(((t1 - t0) / 10000000 % 100)) "$rc" >&2
