#!/usr/bin/env python3
"""virtio-balloon integration tests on KVM with the test guest
tests/guest/balloon.elf: host memory released by inflating and by free page
reporting (pocketvm's RSS), refill and verify after deflating, guest
statistics, a snapshot taken while inflated, restore, hostile requests, and
the --balloon options.

usage: balloon_test.py POCKETVM
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from vmrunner import VM, Checks  # noqa: E402

PVM = sys.argv[1]
GUESTS = os.path.join(os.path.dirname(os.path.abspath(PVM)), "tests", "guest")
BALLOON = os.path.join(GUESTS, "balloon.elf")
MEMFILL = os.path.join(GUESTS, "memfill.elf")
W = tempfile.mkdtemp(prefix="pocketvm-balloon.")
MiB = 1 << 20
check = Checks("balloon")


def ctl(sock, *args):
    p = subprocess.run([PVM, "ctl", sock, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip()


def stats(sock):
    rc, out = ctl(sock, "stats")
    assert rc == 0, out
    return json.loads(out)


def wait_stats(sock, cond, what, timeout=30):
    """Poll `ctl stats` until cond(reply) holds (each call also asks the
    guest for fresh statistics)."""
    deadline = time.monotonic() + timeout
    while True:
        s = stats(sock)
        if cond(s):
            return s
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: last stats {s}")
        time.sleep(0.05)  # polling interval of a condition with a deadline


def wait_api(sock, timeout=60):
    deadline = time.monotonic() + timeout
    while ctl(sock, "status")[0] != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no control socket at {sock}")
        time.sleep(0.05)  # polling interval of a condition with a deadline


def rss_mib(pid):
    """Resident set of pocketvm (smaps_rollup Rss), in MiB."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no Rss in smaps_rollup")


def near(value, want, tol=0.10):
    return abs(value - want) <= want * tol


def log_count(path, needle):
    with open(path, "rb") as f:
        return f.read().count(needle.encode())


# One VM carries the main sequence; each step leaves the guest in a known state.
SOCK = os.path.join(W, "a.sock")
SNAP = os.path.join(W, "snap")
state = {}


def start():
    state["vm"] = VM([PVM, "run", "--kernel", BALLOON, "--mem", "512M", "--balloon",
                      "--api", SOCK, "--cmdline", "fill=400"], os.path.join(W, "a.log"))
    state["vm"].expect("FILLED 400", 60)
    state["vm"].expect("BALLOON-READY stats=1 reporting=1", 30)


def inflate_releases_memory():
    vm = state["vm"]
    before = rss_mib(vm.proc.pid)
    rc, out = ctl(SOCK, "balloon", "200")
    assert rc == 0 and json.loads(out)["target_mib"] == 200, out
    vm.expect("BALLOON 51200", 60)
    s = wait_stats(SOCK, lambda s: s["balloon"]["actual_mib"] == 200, "actual 200")
    assert s["balloon"]["inflated_mib"] == 200 and s["balloon"]["driver_ok"], s
    after = rss_mib(vm.proc.pid)
    assert near(before - after, 200), f"RSS {before:.0f} -> {after:.0f} MiB"
    assert s["rss_kib"] > 0


def deflate_refills():
    vm = state["vm"]
    before = rss_mib(vm.proc.pid)
    rc, out = ctl(SOCK, "balloon", "0")
    assert rc == 0, out
    vm.expect("BALLOON 0", 60)
    vm.send("verify\n")
    got = vm.expect("VERIFY-OK 400\n", 60)
    assert b"MISMATCH" not in got, got
    after = rss_mib(vm.proc.pid)
    assert near(after - before, 200), f"RSS {before:.0f} -> {after:.0f} MiB"
    s = wait_stats(SOCK, lambda s: s["balloon"]["actual_mib"] == 0, "actual 0")
    assert s["balloon"]["inflated_mib"] == 0, s


def guest_stats():
    s = wait_stats(SOCK, lambda s: "guest" in s and s["guest"]["total"] == 512 * MiB
                   and s["guest"]["free"] == (512 - 400) * MiB, "guest statistics")
    g = s["guest"]
    assert g["available"] >= g["free"] and g["caches"] == g["available"] - g["free"], g
    assert g["age_ms"] < 30000 and g["major_faults"] == 0 and g["swap_in"] == 0, g


def reporting_releases_memory():
    vm = state["vm"]
    vm.send("use 50\n")
    vm.expect("USE-OK 450", 60)
    before = rss_mib(vm.proc.pid)
    vm.send("free 100\n")
    vm.expect("FREED 100 reported=1", 60)
    after = rss_mib(vm.proc.pid)
    assert near(before - after, 100), f"RSS {before:.0f} -> {after:.0f} MiB"
    s = stats(SOCK)
    assert s["balloon"]["reported_mib"] == 100 and s["balloon"]["inflated_mib"] == 0, s


def snapshot_while_inflated():
    vm = state["vm"]
    rc, out = ctl(SOCK, "balloon", "100")
    assert rc == 0, out
    vm.expect("BALLOON 25600", 60)
    wait_stats(SOCK, lambda s: s["balloon"]["actual_mib"] == 100, "actual 100")
    rc, out = ctl(SOCK, "snapshot", SNAP, "--exit")
    assert rc == 0, out
    assert vm.wait(60) == 0
    # 350 MiB were in use, 100 of them went to the balloon: 250 MiB of data.
    used = os.stat(os.path.join(SNAP, "memory")).st_blocks * 512 / MiB
    assert 250 <= used <= 250 * 1.05 + 4, f"memory file holds {used:.0f} MiB"
    sock = os.path.join(W, "b.sock")
    log = os.path.join(W, "b.log")
    vm = state["vm"] = VM([PVM, "run", "--restore", SNAP, "--api", sock], log)
    state["sock"], state["log"] = sock, log
    wait_api(sock)
    s = stats(sock)
    b = s["balloon"]
    assert b["target_mib"] == 100 and b["actual_mib"] == 100 and b["inflated_mib"] == 100, b
    assert b["reported_mib"] == 100 and b["driver_ok"], b
    vm.send("verify\n")
    vm.expect("VERIFY-OK 250", 60)
    # Lazily restored RAM is a private file mapping: inflating drops it too.
    before = rss_mib(vm.proc.pid)
    assert ctl(sock, "balloon", "200")[0] == 0
    vm.expect("BALLOON 51200", 60)
    after = rss_mib(vm.proc.pid)
    assert near(before - after, 100, 0.15), f"RSS {before:.0f} -> {after:.0f} MiB"
    assert ctl(sock, "balloon", "0")[0] == 0
    vm.expect("BALLOON 0", 60)
    vm.send("verify\n")
    vm.expect("VERIFY-OK 350", 60)
    assert b"MISMATCH" not in vm.buf


def hostile():
    vm, sock = state["vm"], state["sock"]
    rc, out = ctl(sock, "balloon", "100000")  # more than RAM: clamped
    assert rc == 0 and json.loads(out)["target_mib"] == 512, out
    assert stats(sock)["balloon"]["target_mib"] == 512
    assert ctl(sock, "balloon", "0")[0] == 0
    wait_stats(sock, lambda s: s["balloon"]["actual_mib"] == 0, "deflated after clamp", 60)
    for _ in range(2):
        vm.send("hostile\n")
        vm.expect("HOSTILE-DONE", 30)
    rc, out = ctl(sock, "status")
    assert rc == 0 and '"running"' in out, out
    vm.send("verify\n")
    vm.expect("VERIFY-OK 350", 60)
    rc, out = ctl(sock, "balloon", "abc")
    assert rc == 2, out
    vm.send("quit\n")
    vm.expect("TEST-PASS balloon", 30)
    assert vm.wait(30) == 0
    log = state["log"]
    assert log_count(log, "PFNs outside guest RAM ignored") == 1, open(log, "rb").read()[-2000:]
    assert log_count(log, "not a multiple of 4") == 1
    assert b"needs reset" not in open(log, "rb").read()


def without_balloon():
    sock = os.path.join(W, "c.sock")
    vm = VM([PVM, "run", "--kernel", MEMFILL, "--mem", "64M", "--cmdline", "fill=8",
             "--api", sock])
    try:
        vm.expect("FILLED", 30)
        rc, out = ctl(sock, "balloon", "10")
        assert rc == 1 and "no balloon" in out, out
        s = stats(sock)
        assert "balloon" not in s and "guest" not in s and s["rss_kib"] > 0, s
        ctl(sock, "quit")
        assert vm.wait(30) == 0
    finally:
        vm.kill()


def features_off():
    # Without the stats queue, Linux and this guest put reporting at index 2.
    sock = os.path.join(W, "d.sock")
    vm = VM([PVM, "run", "--kernel", BALLOON, "--mem", "128M",
             "--balloon=nostats,nodeflate-on-oom", "--api", sock, "--cmdline", "fill=64"])
    try:
        vm.expect("BALLOON-READY stats=0 reporting=1", 30)
        before = rss_mib(vm.proc.pid)
        vm.send("free 32\n")
        vm.expect("FREED 32 reported=1", 30)
        assert near(before - rss_mib(vm.proc.pid), 32, 0.15)
        assert ctl(sock, "balloon", "16")[0] == 0
        vm.expect("BALLOON 4096", 30)
        s = stats(sock)
        assert s["balloon"]["reported_mib"] == 32 and "guest" not in s, s
        vm.send("quit\n")
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    vm = VM([PVM, "run", "--kernel", BALLOON, "--mem", "128M", "--balloon=noreporting",
             "--cmdline", "fill=32"])
    try:
        vm.expect("BALLOON-READY stats=1 reporting=0", 30)
        vm.send("free 8\nquit\n")
        vm.expect("FREED 8 reported=0", 30)
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    p = subprocess.run([PVM, "run", "--kernel", BALLOON, "--balloon=bogus"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "--balloon: unknown option 'bogus'" in p.stderr, p.stderr


try:
    check("start", start)
    check("inflate-releases-host-memory", inflate_releases_memory)
    check("deflate-refills-and-verifies", deflate_refills)
    check("guest-stats", guest_stats)
    check("free-page-reporting-releases-host-memory", reporting_releases_memory)
    check("snapshot-while-inflated-and-restore", snapshot_while_inflated)
    check("hostile-target-and-pfns", hostile)
finally:
    if "vm" in state:
        state["vm"].kill()
check("no-balloon-refused", without_balloon)
check("features-off-queue-numbering", features_off)
shutil.rmtree(W, ignore_errors=True)
sys.exit(check.finish())
