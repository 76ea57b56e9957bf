#!/usr/bin/env bash
# Command-line behaviour, boot-path exits and error messages, with tiny
# hand-made ELF guests: a reset ends with 0, a triple fault with 2 and a
# message, bad files with a message naming the file.
#   cli.sh POCKETVM
set -uo pipefail
PVM=$1
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/pocketvm-cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
pass=0 fail=0

t() { # name expected_rc grep_pattern -- command...
	local name=$1 want=$2 pat=$3; shift 4
	local out rc
	out=$(timeout 60 "$@" </dev/null 2>&1); rc=$?
	if [ "$rc" -eq "$want" ] && { [ -z "$pat" ] || grep -qE -- "$pat" <<<"$out"; }; then
		echo "ok   $name"; pass=$((pass + 1))
	else
		echo "FAIL $name: rc=$rc (want $want), output:"; echo "$out" | tail -n 8 | sed 's/^/  | /'
		fail=$((fail + 1))
	fi
}

mk() { python3 "$HERE/mini_elf.py" "$W/$1" "$2"; }
# mov al,0xfe; out 0x64,al; hlt
mk reset.elf b0fee664f4
# ud2 with no IDT: #UD -> #DF -> triple fault
mk fault.elf 0f0b
# write "hi\n" to COM1 then reset: mov dx,0x3f8; mov al,'h'; out dx,al; ...
mk hello.elf 66baf803b068eeb069eeb00aeeb0fee664f4

t help 0 "run" -- "$PVM" --help
t run-help 0 "--disk" -- "$PVM" run --help
t unknown-command 2 "unknown command" -- "$PVM" frobnicate
t bad-option 2 "" -- "$PVM" run --frob
t bad-mem 2 "--mem" -- "$PVM" run --kernel "$W/reset.elf" --mem 3M
t bad-cpus 2 "--cpus" -- "$PVM" run --kernel "$W/reset.elf" --cpus 9
t missing-kernel 1 "$W/nope" -- "$PVM" run --kernel "$W/nope"
head -c 100 "$W/reset.elf" >"$W/trunc.elf"
t truncated-kernel 1 "trunc.elf" -- "$PVM" run --kernel "$W/trunc.elf"
printf 'garbage' >"$W/junk"
t junk-kernel 1 "junk" -- "$PVM" run --kernel "$W/junk"
t missing-initrd 1 "nope.cpio" -- "$PVM" run --kernel "$W/reset.elf" --initrd "$W/nope.cpio"
t missing-disk 1 "nodisk.img" -- "$PVM" run --kernel "$W/reset.elf" --disk "$W/nodisk.img"
t reset-exits-0 0 "" -- "$PVM" run --kernel "$W/reset.elf" --mem 64M --cpus 1
t reset-4cpus 0 "" -- "$PVM" run --kernel "$W/reset.elf" --mem 64M --cpus 4
t triple-fault 2 "triple fault" -- "$PVM" run --kernel "$W/fault.elf" --mem 64M
t serial-output 0 "^hi" -- "$PVM" run --kernel "$W/hello.elf" --mem 64M
t ctl-no-socket 1 "cannot connect" -- "$PVM" ctl "$W/none.sock" status
t ctl-usage 2 "usage" -- "$PVM" ctl

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
