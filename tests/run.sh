#!/usr/bin/env bash
# The whole test suite: unit tests (also under ASan+UBSan), fuzzers for a
# short time, integration tests with our test guests on KVM, and the real
# Linux guest. Ends with one line "N passed, N failed".
#
#   tests/run.sh [BUILD_DIR]        (make test)
# Environment: FUZZ_SECONDS (default 20 per harness), SKIP_LINUX=1, SKIP_FUZZ=1,
# SKIP_ASAN=1 to leave a layer out while developing (CI runs everything).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
WORK=$(mktemp -d /tmp/pocketvm-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
failures=()

# Run a command whose output ends with "N passed, N failed"; add its counts.
# If it prints no such line, count it as one test by its exit status.
run_counted() {
	local name=$1; shift
	local log="$WORK/$name.log"
	echo "== $name"
	"$@" >"$log" 2>&1
	local rc=$?
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	grep -E '^(ok|FAIL) ' "$log" | sed 's/^/   /'
	if [ -n "$line" ]; then
		local p f
		p=$(echo "$line" | awk '{print $1}')
		f=$(echo "$line" | awk '{print $3}')
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
		passed=$((passed + p)); failed=$((failed + f))
	elif [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
	if [ "$rc" -ne 0 ]; then
		failures+=("$name")
		echo "   -- $name failed (rc=$rc); last lines of $log:"
		tail -n 30 "$log" | sed 's/^/   | /'
	fi
}

# 1. Unit tests
for t in "$BUILD"/test_*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	run_counted "unit:$(basename "$t")" "$t"
done

# 2. Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
if [ "${SKIP_ASAN:-0}" != 1 ]; then
	if [ ! -f build-asan/build.ninja ]; then
		meson setup build-asan --werror -Db_sanitize=address,undefined -Db_lundef=false \
			>"$WORK/asan-setup.log" 2>&1 || cat "$WORK/asan-setup.log"
	fi
	if ninja -C build-asan >"$WORK/asan-build.log" 2>&1; then
		for t in build-asan/test_*; do
			[ -f "$t" ] && [ -x "$t" ] || continue
			UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
				run_counted "asan:$(basename "$t")" "$t"
		done
	else
		tail -n 40 "$WORK/asan-build.log"
		failed=$((failed + 1)); failures+=("asan-build")
	fi
fi

# 3. Fuzzers, briefly, from their seed corpora
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang meson setup build-fuzz --werror -Dfuzz=true -Db_sanitize=address,undefined \
			-Db_lundef=false >"$WORK/fuzz-setup.log" 2>&1 || cat "$WORK/fuzz-setup.log"
	fi
	if ninja -C build-fuzz >"$WORK/fuzz-build.log" 2>&1; then
		for f in build-fuzz/fuzz_*; do
			[ -f "$f" ] && [ -x "$f" ] || continue
			n=$(basename "$f"); n=${n#fuzz_}
			corpus="$WORK/corpus-$n"
			mkdir -p "$corpus"
			[ -d "tests/fuzz/corpus/$n" ] && cp -r "tests/fuzz/corpus/$n/." "$corpus/"
			run_counted "fuzz:$n" "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
				-artifact_prefix="$WORK/crash-$n-" "$corpus"
		done
	else
		tail -n 40 "$WORK/fuzz-build.log"
		failed=$((failed + 1)); failures+=("fuzz-build")
	fi
fi

# 4. Integration tests with our test guests (real KVM)
if [ -x tests/integration/guest-tests.sh ]; then
	run_counted "integration:test-guests" tests/integration/guest-tests.sh \
		"$BUILD/pocketvm" "$BUILD/tests/guest"
fi
run_counted "integration:cli" tests/integration/cli.sh "$BUILD/pocketvm"
run_counted "integration:snapshot" python3 tests/integration/snapshot_test.py "$BUILD/pocketvm"
run_counted "integration:snapshot-inflight" python3 tests/integration/snapshot_inflight_test.py \
	"$BUILD/pocketvm"
run_counted "integration:balloon" python3 tests/integration/balloon_test.py "$BUILD/pocketvm"
run_counted "integration:balloon-policy" python3 tests/integration/balloon_policy_test.py \
	"$BUILD/pocketvm"

# 5. The real Linux guest (slow here: one boot per script)
if [ "${SKIP_LINUX:-0}" != 1 ]; then
	run_counted "integration:linux" python3 tests/integration/linux_boot.py \
		"$BUILD/pocketvm" "$WORK/linux"
	run_counted "integration:linux-balloon" python3 tests/integration/linux_balloon.py \
		"$BUILD/pocketvm" "$WORK/linux-balloon"
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "failing: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
