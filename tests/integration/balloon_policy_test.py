#!/usr/bin/env python3
"""The balloon controller end to end on KVM with the test guest
tests/guest/balloon.elf: foreground/background from the process's real
oom_score_adj and from `ctl`, the policy inflating under host memory
pressure up to the guest's pressure bound, the metrics stream, and the
suspend-to-snapshot under critical pressure with the balloon at its limit
(then a restore). Host pressure is staged through a fake /proc tree
(--balloon-policy host-root=DIR): the device, the guest and the VM are real.

usage: balloon_policy_test.py POCKETVM
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
BALLOON = os.path.join(os.path.dirname(os.path.abspath(PVM)), "tests", "guest", "balloon.elf")
W = tempfile.mkdtemp(prefix="pocketvm-bpolicy.")
check = Checks("balloon-policy")


def ctl(sock, *args):
    p = subprocess.run([PVM, "ctl", sock, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"ctl {args}: {p.stdout} {p.stderr}"
    return json.loads(p.stdout)


def until(sock, cond, what, timeout=30):
    """Poll `ctl stats` until cond(reply) holds, with a deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = ctl(sock, "stats")
        if cond(last):
            return last
        time.sleep(0.1)  # polling interval of a condition with a deadline
    raise AssertionError(f"{what}: not within {timeout}s; last: {last}")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # the controller never reads half a file


def meminfo(root, avail_mib):
    write(os.path.join(root, "proc", "meminfo"),
          f"MemTotal:       16777216 kB\nMemFree:        {avail_mib * 1024} kB\n"
          f"MemAvailable:   {avail_mib * 1024} kB\nCached:          0 kB\n")


def psi(root, some10, full10):
    write(os.path.join(root, "proc", "pressure", "memory"),
          f"some avg10={some10:.2f} avg60=0.00 avg300=0.00 total=1\n"
          f"full avg10={full10:.2f} avg60=0.00 avg300=0.00 total=1\n")


def oom_adj_follows():
    """The real /proc/PID/oom_score_adj, as Android's activity manager sets it."""
    sock = os.path.join(W, "adj.sock")
    vm = VM([PVM, "run", "--kernel", BALLOON, "--mem", "256M", "--balloon", "--api", sock,
             "--cmdline", "fill=64"])
    try:
        vm.expect("BALLOON-READY", 30)
        until(sock, lambda s: s["policy"]["foreground"], "starts in the foreground")
        with open(f"/proc/{vm.proc.pid}/oom_score_adj", "w") as f:
            f.write("900\n")  # a cached app
        until(sock, lambda s: not s["policy"]["foreground"] and
              s["policy"]["oom_score_adj"] == 900, "background at oom_score_adj 900")
        with open(f"/proc/{vm.proc.pid}/oom_score_adj", "w") as f:
            f.write("500\n")  # between the thresholds: no change
        until(sock, lambda s: s["policy"]["oom_score_adj"] == 500, "reads 500")
        assert not ctl(sock, "stats")["policy"]["foreground"]
        with open(f"/proc/{vm.proc.pid}/oom_score_adj", "w") as f:
            f.write("100\n")  # visible
        until(sock, lambda s: s["policy"]["foreground"], "foreground at oom_score_adj 100")
        assert ctl(sock, "background")["foreground"] is False
        assert not ctl(sock, "stats")["policy"]["foreground"]
        ctl(sock, "quit")
        assert vm.wait(30) == 0
    finally:
        vm.kill()


def pressure_inflate_then_suspend():
    root = os.path.join(W, "host")
    meminfo(root, 8192)
    psi(root, 0, 0)
    sock, state = os.path.join(W, "p.sock"), os.path.join(W, "state")
    metrics = os.path.join(W, "metrics.jsonl")
    vm = VM([PVM, "run", "--kernel", BALLOON, "--mem", "512M", "--balloon", "--api", sock,
             "--cmdline", "fill=400 keep=300", "--state", state, "--metrics", metrics,
             "--balloon-policy", f"host-root={root},start=background,interval=100ms,"
             "stats-interval=200ms,oom-adj=off"])
    try:
        vm.expect("BALLOON-READY", 30)
        s = until(sock, lambda s: "guest" in s, "guest stats")
        assert not s["policy"]["foreground"] and s["balloon"]["target_mib"] == 0, s
        # Host free falls to 150 MiB, below the cached-app threshold (216 MiB)
        # but above the perceptible one (108 MiB, below which it is critical):
        # inflate, step by step, until the guest's pressure bound (0.95).
        rss0 = s["rss_kib"]
        meminfo(root, 150)
        s = until(sock, lambda s: s["balloon"]["actual_mib"] > 0 and
                  s["policy"]["reason"].startswith("background: host free 150 MiB < need")
                  and "at its limit" in s["policy"]["reason"], "inflate to the bound", 60)
        b = s["balloon"]["actual_mib"]
        # 300 MiB of data, 100 of cache, ~96 free of 512: U = 300 MiB and the
        # bound R - U / 0.95 is ~196 MiB; the cache goes first (resident pages)
        assert 180 <= b <= 200, s
        assert s["rss_kib"] <= rss0 - 90 * 1024, (rss0, s)
        assert s["policy"]["pressure"] == "medium", s
        # Critical host pressure with the balloon at its limit: save and exit.
        psi(root, 60, 40)
        rc = vm.wait(60)
        assert rc == 0, f"rc={rc}"
        assert b"saving to" in vm.buf, vm.buf[-2000:]
    finally:
        vm.kill()
    assert os.path.exists(os.path.join(state, "state")), "the suspend left no snapshot"
    lines = [json.loads(x) for x in open(metrics)]
    acts = {x["action"] for x in lines}
    assert {"inflate", "suspend"} <= acts, acts
    assert all("t" in x and "balloon_mib" in x and "host_free_mib" in x for x in lines)
    assert any(x.get("event") == "suspend" for x in lines)
    # tools/plot-balloon draws the stream.
    png = os.path.join(W, "timeline.png")
    root_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run([os.path.join(root_dir, "tools", "plot-balloon"), metrics, png],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert os.path.getsize(png) > 10000
    # The next launch restores, balloon and all, and the guest memory is intact.
    meminfo(root, 8192)
    psi(root, 0, 0)
    sock2 = os.path.join(W, "p2.sock")
    vm = VM([PVM, "run", "--kernel", BALLOON, "--state", state, "--api", sock2, "-v",
             "--balloon-policy", f"host-root={root},oom-adj=off"])
    try:
        vm.expect("restored from", 30)
        s = ctl(sock2, "stats")
        assert s["balloon"]["actual_mib"] == b, (b, s)
        vm.send("verify\n")
        vm.expect("VERIFY-OK", 60)
        ctl(sock2, "quit")
        assert vm.wait(60) == 0
    finally:
        vm.kill()


def foreground_deflates():
    """Back in the foreground with a guest under pressure: the balloon deflates."""
    root = os.path.join(W, "host-fg")
    meminfo(root, 8192)
    psi(root, 0, 0)
    sock = os.path.join(W, "fg.sock")
    vm = VM([PVM, "run", "--kernel", BALLOON, "--mem", "512M", "--balloon", "--api", sock,
             "--cmdline", "fill=300 keep=250", "--balloon-policy",
             f"host-root={root},interval=100ms,stats-interval=200ms,oom-adj=off,hold=1s"])
    try:
        vm.expect("BALLOON-READY", 30)
        until(sock, lambda s: "guest" in s, "guest stats")
        ctl(sock, "balloon", "150")              # manual: the policy stands aside
        until(sock, lambda s: s["balloon"]["actual_mib"] == 150, "manual inflate")
        vm.send("use 100\n")                      # the guest needs more memory: it waits
        ctl(sock, "balloon", "auto")              # the policy takes over again and
        vm.expect("USE-OK", 60)                   # deflates: the guest gets its memory
        s = ctl(sock, "stats")
        assert s["balloon"]["actual_mib"] < 150, s
        vm.send("verify\n")
        vm.expect("VERIFY-OK", 60)
        ctl(sock, "quit")
        assert vm.wait(30) == 0
    finally:
        vm.kill()


def refusals():
    p = subprocess.run([PVM, "run", "--kernel", BALLOON, "--balloon",
                        "--balloon-policy", "fg-limit=0.9,bg-limit=0.5"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "inconsistent" in p.stderr, p.stderr
    p = subprocess.run([PVM, "run", "--kernel", BALLOON, "--balloon",
                        "--balloon-policy", "bogus=1"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "unknown key 'bogus'" in p.stderr, p.stderr


check("oom-score-adj-foreground-background", oom_adj_follows)
check("pressure-inflates-then-suspends-to-snapshot", pressure_inflate_then_suspend)
check("foreground-deflates-under-guest-pressure", foreground_deflates)
check("bad-policy-options-refused", refusals)
shutil.rmtree(W, ignore_errors=True)
sys.exit(check.finish())
