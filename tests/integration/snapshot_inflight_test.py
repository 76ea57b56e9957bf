#!/usr/bin/env python3
"""Snapshots of a guest that always has virtio-blk requests in flight.

The guest (tests/guest/blkloop.c) keeps 32 requests outstanding on a queue
of 128, takes completions by MSI-X, runs the LAPIC timer on both vCPUs and
holds known values in its registers; it fails on a request lost or
completed twice, a wrong used length, data that does not verify, a lost
interrupt, a stopped timer or a changed register. Here it is snapshotted
while it runs (paused for a disk copy, or not), with --exit, and at random
moments, and every snapshot is restored and must run to TEST-PASS with many
completions after the restore, exit status 0 and no TEST-FAIL.

Disks: a snapshot records the disk's identity, and the guest's memory only
matches the disk as it was at the snapshot. A VM that continues after a
snapshot is paused around it and its disk copied before it resumes; after
an --exit snapshot the disk is left alone (or copied, to restore twice).
Saves into a snapshot's own directory (incremental, in place) are restored
too: of the running VM, and of a restored VM, twice.

usage: snapshot_inflight_test.py POCKETVM [BLKLOOP_ELF]
"""
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from vmrunner import VM, Checks  # noqa: E402

PVM = os.path.abspath(sys.argv[1])
GUEST = (sys.argv[2] if len(sys.argv) > 2 else
         os.path.join(os.path.dirname(PVM), "tests", "guest", "blkloop.elf"))
W = tempfile.mkdtemp(prefix="pocketvm-inflight.")
SEED = int(os.environ.get("INFLIGHT_SEED", random.randrange(1 << 30)))
RUN_TIMEOUT = 180      # a restored guest's whole run; ~40k completions/s here
DISK_MIB = 32
check = Checks("inflight")


def ctl(sock, *args):
    return subprocess.run([PVM, "ctl", sock, *args], capture_output=True, text=True,
                          timeout=120)


def ctl_ok(sock, *args):
    out = ctl(sock, *args)
    assert out.returncode == 0 and '"ok":true' in out.stdout, \
        f"ctl {' '.join(args)}: rc={out.returncode} {out.stdout.strip()} {out.stderr.strip()}"
    return out.stdout


def new_disk(name):
    path = os.path.join(W, name)
    with open(path, "wb") as f:
        f.truncate(DISK_MIB << 20)
    return path


def copy(src, name):
    dst = os.path.join(W, name)
    subprocess.run(["cp", "--reflink=auto", "--sparse=always", src, dst], check=True)
    return dst


def boot(name, disk, rounds, seed, event_idx=0):
    sock = os.path.join(W, name + ".sock")
    cmdline = f"rounds={rounds} cpus=2 seed={seed} event_idx={event_idx}"
    vm = VM([PVM, "run", "-v", "--kernel", GUEST, "--mem", "64M", "--cpus", "2",
             "--disk", disk, "--api", sock, "--cmdline", cmdline],
            log_path=os.path.join(W, name + ".log"))
    return vm, sock


def show_saves(*logs):
    """Print how pocketvm says it saved (complete or incremental): for the reader."""
    for log in logs:
        text = open(os.path.join(W, log), errors="replace").read()
        for m in re.finditer(r"snapshot: saving (\S+): ([^\r\n]*)", text):
            print(f"   {log}: {os.path.basename(m.group(1))}: {m.group(2)}", flush=True)


def read_line(vm, deadline):
    """The next line of the guest's output (without the newline)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    line = vm.expect(b"\n", left).decode(errors="replace").rstrip("\r")
    if "TEST-FAIL" in line:  # the line before it has the details
        raise AssertionError(f"guest: {getattr(vm, 'last_line', '')}; {line}")
    vm.last_line = line
    return line


def wait_blk(vm, at_least, timeout=RUN_TIMEOUT):
    """Wait for a progress line "BLK n" with n >= at_least; return n."""
    deadline = time.monotonic() + timeout
    while True:
        m = re.match(r"BLK (\d+) ", read_line(vm, deadline))
        if m and int(m.group(1)) >= at_least:
            return int(m.group(1))


def live_snapshot(sock, snap, disk, name, keep=False):
    """Snapshot a running VM that continues into @snap: paused around the
    snapshot and the copy of its disk, so that the copy is the disk the
    snapshot's memory knows. With @keep, restore from a copy of the snapshot
    (taken while paused), as a later save replaces @snap."""
    ctl_ok(sock, "pause")
    try:
        ctl_ok(sock, "snapshot", snap)
        st = ctl_ok(sock, "status")
        assert '"state":"paused"' in st, f"a snapshot of a paused VM resumed it: {st}"
        disk_copy = copy(disk, name + ".disk")
        if keep:
            kept = os.path.join(W, name)
            subprocess.run(["cp", "-a", "--sparse=always", snap, kept], check=True)
            snap = kept
    finally:
        ctl(sock, "resume")
    return snap, disk_copy


def restore(name, snap, disk=None, mode=None, rounds=None, before=0, min_after=0):
    """Restore @snap (onto @disk, else the disk the snapshot names) and run the
    guest to TEST-PASS: exit 0, no TEST-FAIL, no second boot, its progress
    continuing from @before, at least @min_after completions after the restore."""
    sock = os.path.join(W, name + ".sock")
    log = os.path.join(W, name + ".log")
    argv = [PVM, "run", "--restore", snap, "--api", sock]
    if disk:
        argv += ["--disk", disk]
    if mode:
        argv += ["--restore-mode", mode]
    vm = VM(argv, log_path=log)
    try:
        try:
            vm.expect("TEST-PASS blkloop", RUN_TIMEOUT)
        except TimeoutError as e:
            text = open(log, errors="replace").read()
            fail = [ln for ln in text.splitlines() if "TEST-FAIL" in ln or "blkloop:" in ln]
            raise AssertionError("; ".join(fail[-4:]) if fail else str(e)) from None
        rc = vm.wait(60)
    finally:
        vm.kill()
    text = open(log, errors="replace").read()
    assert rc == 0, f"exit status {rc}"
    assert "TEST-FAIL" not in text, text[-600:]
    assert "BLKLOOP start" not in text, "the restored guest booted again"
    done = re.search(r"BLKLOOP done completions=(\d+)", text)
    assert done, "no final count"
    total = int(done.group(1))
    if rounds:
        assert total >= rounds, f"{total} completions, rounds={rounds}"
    blk = [int(x) for x in re.findall(r"^BLK (\d+) ", text, re.M)]
    assert blk and blk[0] >= before, f"progress went back: {blk[:1]} after {before}"
    after = total - blk[0]
    assert after >= min_after, f"only {after} completions after the restore"
    return total


LIVE_ROUNDS = 240000
live = {}


def live_vm():
    """One VM, snapshots while it runs (paused for a disk copy, or not) and an
    --exit snapshot at the end, the last three into one directory (new, in
    place, incremental); the VM itself must not fail meanwhile."""
    disk = new_disk("live.img")
    live["disk"] = disk
    vm, sock = boot("live", disk, LIVE_ROUNDS, SEED)
    try:
        vm.expect("BLKLOOP running", 60)
        n = wait_blk(vm, 20000)
        # Not paused: the VM goes on and its disk moves past the snapshot.
        running = os.path.join(W, "snap-running")
        ctl_ok(sock, "snapshot", running)
        assert '"state":"running"' in ctl_ok(sock, "status")
        live["running"] = running
        n = wait_blk(vm, n + 10000)
        snap = os.path.join(W, "snap-live")
        live["live1"] = (*live_snapshot(sock, snap, disk, "live1", keep=True), n)
        n = wait_blk(vm, n + 10000)
        # Into the same directory (in place), and the exit snapshot too (by
        # then incremental: what changed since).
        live["live2"] = (*live_snapshot(sock, snap, disk, "live2", keep=True), n)
        n = wait_blk(vm, n + 20000)
        exit_snap = snap
        ctl_ok(sock, "snapshot", exit_snap, "--exit")
        rc = vm.wait(60)
        assert rc == 0, f"exit status {rc} after snapshot --exit"
    finally:
        vm.kill()
    text = open(os.path.join(W, "live.log"), errors="replace").read()
    assert "TEST-FAIL" not in text, "the original VM failed"
    assert "TEST-PASS" not in text, "the original VM finished before its last snapshot"
    live["exit"] = (exit_snap, copy(disk, "exit.pristine"), n)
    show_saves("live.log")


def restore_live(name):
    snap, disk_copy, at = live[name]
    restore(name, snap, disk_copy, rounds=LIVE_ROUNDS, before=at, min_after=100000)


def restore_twice():
    """The same --exit snapshot restored twice, each from a copy of one disk state."""
    snap, pristine, at = live["exit"]
    for i in (1, 2):
        restore(f"exit-{i}", snap, copy(pristine, f"exit-{i}.img"), rounds=LIVE_ROUNDS,
                before=at, min_after=100000)


def restore_own_disk():
    """The --exit snapshot on the disk it names, untouched since: accepted."""
    snap, _, at = live["exit"]
    restore("exit-own-disk", snap, rounds=LIVE_ROUNDS, before=at, min_after=100000)


def resave_restored():
    """A restored VM saved again into the snapshot it came from while its
    requests are in flight (in place: what it wrote, the devices' writes into
    its memory, over the file a lazy restore maps), twice, lazy then eager,
    each after 20000 more completions; the last one run to the end."""
    snap, pristine, at = live["exit"]
    disk = copy(pristine, "resave.img")
    for gen, mode in enumerate(("lazy", "eager"), 1):
        sock = os.path.join(W, f"resave{gen}.sock")
        argv = [PVM, "run", "-v", "--restore", snap, "--restore-mode", mode, "--api", sock]
        if gen == 1:
            argv += ["--disk", disk]  # the snapshots saved from here name it
        vm = VM(argv, log_path=os.path.join(W, f"resave{gen}.log"))
        try:
            at = wait_blk(vm, at + 20000)
            ctl_ok(sock, "snapshot", snap, "--exit")
            rc = vm.wait(60)
            assert rc == 0, f"generation {gen}: exit status {rc} after snapshot --exit"
        finally:
            vm.kill()
    show_saves("resave1.log", "resave2.log")
    restore("resave-last", snap, rounds=LIVE_ROUNDS, before=at, min_after=100000)


def moved_disk():
    """The disk moved on after the running snapshot: the restore is refused, and
    when forced the guest notices that the data is not what it wrote."""
    running = live["running"]
    p = subprocess.run([PVM, "run", "--restore", running], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "changed since the snapshot" in p.stderr, \
        f"a changed disk was not refused: rc={p.returncode} {p.stderr[-300:]}"
    moved = copy(live["disk"], "moved.img")
    p = subprocess.run([PVM, "run", "--restore", running, "--disk", moved, "--force-disks"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert "TEST-FAIL blkloop: data does not verify" in p.stdout, \
        f"the guest did not notice a disk that moved on: {p.stdout[-300:]}"


def random_moment(i, rng):
    """Boot, snapshot --exit after a random delay, restore, run to the end."""
    rounds = 100000
    disk = new_disk(f"rand{i}.img")
    delay = rng.uniform(0, 1.0)
    for _ in range(4):
        vm, sock = boot(f"rand{i}", disk, rounds, SEED + i, event_idx=i % 2)
        try:
            vm.expect("BLKLOOP start", 60)
            time.sleep(delay)  # a random moment to save at, not a synchronisation
            snap = os.path.join(W, f"snap-rand{i}")
            out = ctl(sock, "snapshot", snap, "--exit")
            rc = vm.wait(60)
        finally:
            vm.kill()
        if out.returncode == 0:
            break
        # The guest finished before the delay ran out (a fast host): sooner.
        assert "TEST-PASS" in open(os.path.join(W, f"rand{i}.log")).read(), \
            f"snapshot failed: {out.stdout.strip()} {out.stderr.strip()}"
        delay /= 4
        os.truncate(disk, 0)
        os.truncate(disk, DISK_MIB << 20)
    else:
        raise AssertionError("the guest always finished before the snapshot")
    assert rc == 0, f"exit status {rc} after snapshot --exit"
    mode = ("lazy", "eager")[i % 2]
    total = restore(f"rand{i}-restored", snap, mode=mode, rounds=rounds)
    shutil.rmtree(snap, ignore_errors=True)
    os.unlink(disk)
    print(f"   saved {delay:.3f} s after start (event_idx={i % 2}), restored {mode}, "
          f"{total} completions", flush=True)


print(f"   seed {SEED} (INFLIGHT_SEED={SEED} repeats this run)", flush=True)
def guest_exists():
    assert os.path.exists(GUEST), f"{GUEST} does not exist"


check("setup", guest_exists)
if check.all_passed():
    check("snapshots-of-a-running-vm", live_vm)
    if "exit" in live:
        check("restore-paused-snapshot-1", lambda: restore_live("live1"))
        check("restore-paused-snapshot-2", lambda: restore_live("live2"))
        check("restore-exit-snapshot-twice", restore_twice)
        check("restore-exit-snapshot-own-disk", restore_own_disk)
        check("resave-restored-vm-twice", resave_restored)
        check("moved-disk-refused-and-detected", moved_disk)
    rng = random.Random(SEED)
    for i in range(10):
        check(f"random-moment-{i}", lambda: random_moment(i, rng))
if check.all_passed():
    shutil.rmtree(W, ignore_errors=True)
else:
    print(f"   logs kept in {W}")
sys.exit(check.finish())
