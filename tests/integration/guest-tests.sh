#!/usr/bin/env bash
# Integration tests with our freestanding test guests on real KVM: boot and
# CPL 3, port-I/O and MMIO dispatch, MSI-X delivery, a virtio-blk driver
# (read-write and read-only), a hostile driver, and 4 vCPUs via INIT/SIPI.
#   guest-tests.sh POCKETVM GUEST_DIR
set -uo pipefail
PVM=$1
G=$2
W=$(mktemp -d /tmp/pocketvm-guests.XXXXXX)
trap 'rm -rf "$W"' EXIT
pass=0 fail=0

# name, expected output line, then pocketvm run arguments
t() {
	local name=$1 want=$2; shift 2
	local out rc
	out=$(timeout 120 "$PVM" run "$@" </dev/null 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && grep -q -- "$want" <<<"$out" && ! grep -q TEST-FAIL <<<"$out"; then
		echo "ok   $name"; pass=$((pass + 1))
	else
		echo "FAIL $name (rc=$rc):"; tail -n 10 <<<"$out" | sed 's/^/  | /'
		fail=$((fail + 1))
	fi
}

truncate -s 8M "$W/disk.img"
t hello "TEST-PASS hello" --kernel "$G/hello.elf" --mem 64M --cpus 1
t dispatch "TEST-PASS dispatch" --kernel "$G/dispatch.elf" --mem 64M
t msix "TEST-PASS msix" --kernel "$G/msix.elf" --mem 64M
t blk-rw "TEST-PASS blk" --kernel "$G/blk.elf" --mem 64M --disk "$W/disk.img,serial=pvm-test-1"
t blk-serial "serial=pvm-test-1" --kernel "$G/blk.elf" --mem 64M --disk "$W/disk.img,serial=pvm-test-1"
t blk-ro "ro=1" --kernel "$G/blk.elf" --mem 64M --disk "$W/disk.img,ro"
t hostile-driver "TEST-PASS hostile" --kernel "$G/hostile.elf" --mem 64M
t smp-4 "TEST-PASS smp cpus=4" --kernel "$G/smp.elf" --mem 64M --cpus 4 --cmdline cpus=4
t high-memory "TEST-PASS hello" --kernel "$G/hello.elf" --mem 4G --cpus 1

# The data the guest wrote is in the image file.
if cmp -s -n 512 "$W/disk.img" /dev/zero; then
	echo "FAIL blk-data-on-host: sector 0 is still zero"; fail=$((fail + 1))
else
	echo "ok   blk-data-on-host"; pass=$((pass + 1))
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
