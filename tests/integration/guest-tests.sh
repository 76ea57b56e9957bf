#!/usr/bin/env bash
# Integration tests with our freestanding test guests (tests/guest/) on KVM:
# boot and CPL 3, port-I/O and MMIO dispatch, MSI-X delivery, a virtio-blk
# driver (read-write, read-only, odd size), a hostile driver, SMP bring-up
# with INIT/SIPI, memory fill and verify, and a guest with RAM above 4 GiB.
#
#   guest-tests.sh POCKETVM GUEST_DIR
#
# One line per test, "ok NAME" or "FAIL NAME (...)" with the output's tail,
# then "N passed, N failed"; exits non-zero when anything failed.
set -uo pipefail
if [ $# -ne 2 ]; then
	echo "usage: $0 POCKETVM GUEST_DIR" >&2
	exit 2
fi
PVM=$1
G=$2
TIMEOUT=${GUEST_TEST_TIMEOUT:-60}
for f in "$PVM" "$G/hello.elf"; do
	if [ ! -e "$f" ]; then
		echo "FAIL setup: $f does not exist"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
W=$(mktemp -d /tmp/pocketvm-guests.XXXXXX)
trap 'rm -rf "$W"' EXIT
pass=0 fail=0

ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# t NAME EXPECTED POCKETVM-RUN-ARGS...: passes when pocketvm exits 0 in
# time and the output has no TEST-FAIL but every EXPECTED pattern (grep
# regexes separated by ";;").
t() {
	local name=$1 want=$2; shift 2
	local out rc good=1 w
	out=$(timeout "$TIMEOUT" "$PVM" run "$@" </dev/null 2>&1); rc=$?
	while read -r w; do
		grep -q -- "$w" <<<"$out" || good=0
	done < <(sed 's/;;/\n/g' <<<"$want")
	if [ "$rc" -eq 0 ] && [ "$good" = 1 ] && ! grep -q TEST-FAIL <<<"$out"; then
		ok "$name"
	else
		[ "$rc" -eq 124 ] && rc="timeout after ${TIMEOUT}s"
		bad "$name (rc=$rc, wanted \"$want\"):"
		tail -n 10 <<<"$out" | sed 's/^/  | /'
	fi
}

truncate -s 8M "$W/disk.img"
truncate -s $((1024 * 1024 + 512)) "$W/odd.img"	# 2049 sectors

t hello "TEST-PASS hello" --kernel "$G/hello.elf" --mem 64M --cpus 1
t hello-user-mode "TEST-PASS hello;;^HELLO-FROM-TEST-GUEST;;^cpl=3$" --kernel "$G/hello.elf" --mem 64M
t dispatch "TEST-PASS dispatch" --kernel "$G/dispatch.elf" --mem 64M
t msix "TEST-PASS msix" --kernel "$G/msix.elf" --mem 64M
t blk-rw "TEST-PASS blk" --kernel "$G/blk.elf" --mem 64M --disk "$W/disk.img,serial=pvm-test-1"
t blk-serial "TEST-PASS blk;;^serial=pvm-test-1$" --kernel "$G/blk.elf" --mem 64M --disk "$W/disk.img,serial=pvm-test-1"
t blk-ro "TEST-PASS blk;;ro=1 " --kernel "$G/blk.elf" --mem 64M --disk "$W/disk.img,ro"
t blk-odd-size "TEST-PASS blk" --kernel "$G/blk.elf" --mem 64M --disk "$W/odd.img"
t hostile-driver "TEST-PASS hostile" --kernel "$G/hostile.elf" --mem 64M
t smp-4 "TEST-PASS smp cpus=4" --kernel "$G/smp.elf" --mem 64M --cpus 4 --cmdline cpus=4
t smp-mptable "TEST-PASS smp cpus=3" --kernel "$G/smp.elf" --mem 64M --cpus 3
t memfill "TEST-PASS memfill" --kernel "$G/memfill.elf" --mem 128M --cmdline "fill=64 passes=2"
t high-memory "TEST-PASS hello" --kernel "$G/hello.elf" --mem 4G --cpus 1

# The data the guest wrote is in the image files: the first sector, and the
# last sector of the odd-sized one.
if cmp -s -n 512 "$W/disk.img" /dev/zero; then
	bad "blk-data-on-host: sector 0 is still zero"
elif tail -c 512 "$W/odd.img" | cmp -s - <(head -c 512 /dev/zero); then
	bad "blk-data-on-host: the last sector of odd.img is still zero"
else
	ok blk-data-on-host
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
