#!/usr/bin/env python3
"""Snapshot integration tests on KVM with tiny hand-made guests:
save/restore round trips, the --state lifecycle, refusals with reasons.

usage: snapshot_test.py POCKETVM
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from mini_elf import make_elf  # noqa: E402
from vmrunner import VM  # noqa: E402

PVM = sys.argv[1]
W = tempfile.mkdtemp(prefix="pocketvm-snap.")
results = []

# Guest: write '~' to COM1, then count in RBX forever; on its way it also
# writes the counter's low byte to the UART scratch register, harmless.
# mov dx,0x3f8; mov al,'g'; out dx,al; xor ebx,ebx; loop: inc rbx; jmp loop
LOOP = bytes.fromhex("66baf803b07eee31db48ffc3ebfb")
# Guest: write 'r' then reset.
RESET = bytes.fromhex("66baf803b072eeb0fee664f4")


def elf(name, code):
    path = os.path.join(W, name)
    with open(path, "wb") as f:
        f.write(make_elf(code))
    return path


def check(name, fn):
    try:
        fn()
        results.append(True)
        print(f"ok   snapshot:{name}", flush=True)
    except Exception as e:
        results.append(False)
        import traceback
        print(f"FAIL snapshot:{name}: {e!r} at line {traceback.extract_tb(e.__traceback__)[-1].lineno}", flush=True)


def ctl(sock, *args):
    return subprocess.run([PVM, "ctl", sock, *args], capture_output=True, text=True, timeout=60)


loop = elf("loop.elf", LOOP)
reset = elf("reset.elf", RESET)


def roundtrip():
    sock, snap = os.path.join(W, "a.sock"), os.path.join(W, "snapA")
    vm = VM([PVM, "run", "--kernel", loop, "--mem", "64M", "--cpus", "2", "--api", sock])
    try:
        vm.expect("~", 30)
        out = ctl(sock, "snapshot", snap)          # and keep running
        assert out.returncode == 0 and '"ok":true' in out.stdout, out.stdout + out.stderr
        st = ctl(sock, "status").stdout
        assert '"state":"running"' in st, st
        out = ctl(sock, "snapshot", snap, "--exit")  # replaces the first atomically
        assert out.returncode == 0, out.stdout + out.stderr
        rc = vm.wait(30)
        assert rc == 0, f"rc={rc}"
    finally:
        vm.kill()
    st = os.stat(os.path.join(snap, "memory"))
    assert st.st_size == 64 << 20, st
    assert st.st_blocks * 512 < 4 << 20, f"zero pages must be holes: {st}"
    assert sorted(os.listdir(W)).count("snapA") == 1
    assert not [f for f in os.listdir(W) if f.startswith("snapA.tmp")]
    sock2 = os.path.join(W, "b.sock")
    vm = VM([PVM, "run", "--restore", snap, "--api", sock2, "-v"])
    try:
        vm.expect("restored from", 30)
        out = ctl(sock2, "status")
        assert '"state":"running"' in out.stdout and '"vcpus":2' in out.stdout, out.stdout
        # The guest resumed mid-loop: it must not print its banner again.
        assert ctl(sock2, "quit").returncode == 0
        rc = vm.wait(30)
        assert rc == 0, f"rc={rc}"
        assert b"~" not in vm.buf, vm.buf
    finally:
        vm.kill()


def lifecycle():
    state = os.path.join(W, "state")
    vm = VM([PVM, "run", "--kernel", loop, "--mem", "64M", "--state", state])
    try:
        vm.expect("~", 30)
        vm.proc.send_signal(signal.SIGTERM)        # the app is closed
        rc = vm.wait(60)
        assert rc == 0, f"rc={rc} {vm.buf!r}"
    finally:
        vm.kill()
    assert os.path.exists(os.path.join(state, "state")), "SIGTERM must save"
    sock = os.path.join(W, "c.sock")
    vm = VM([PVM, "run", "--kernel", loop, "--state", state, "--api", sock, "-v"])
    try:
        vm.expect("restored from", 30)             # the next launch restores
        out = ctl(sock, "quit")
        assert '"saved":true' in out.stdout, out.stdout
        rc = vm.wait(60)
        assert rc == 0, f"rc={rc} {vm.buf!r}"
    finally:
        vm.kill()
    assert os.path.exists(os.path.join(state, "state"))
    # A guest that reboots leaves no snapshot behind.
    state2 = os.path.join(W, "state2")
    os.makedirs(state2)
    p = subprocess.run([PVM, "run", "--kernel", reset, "--mem", "64M", "--state", state2],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and not os.path.exists(state2), p.stderr


def refusals():
    snap = os.path.join(W, "snapA")
    bad = os.path.join(W, "bad")
    shutil.copytree(snap, bad)
    with open(os.path.join(bad, "state"), "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0xff]))
    p = subprocess.run([PVM, "run", "--restore", bad], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "corrupt" in p.stderr, p.stderr
    with open(os.path.join(bad, "state"), "r+b") as f:
        f.truncate(100)
    p = subprocess.run([PVM, "run", "--restore", bad], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "truncated" in p.stderr, p.stderr
    # --state with a broken snapshot boots instead, and says so.
    p = subprocess.run([PVM, "run", "--kernel", reset, "--mem", "64M", "--state", bad],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and "booting instead" in p.stderr, p.stderr
    # A directory that is not a snapshot is never overwritten.
    foreign = os.path.join(W, "foreign")
    os.makedirs(foreign)
    open(os.path.join(foreign, "precious.txt"), "w").write("keep")
    sock = os.path.join(W, "d.sock")
    vm = VM([PVM, "run", "--kernel", loop, "--mem", "64M", "--api", sock])
    try:
        vm.expect("~", 30)
        out = ctl(sock, "snapshot", foreign)
        assert out.returncode != 0 and "not a pocketvm snapshot" in out.stdout, out.stdout
        assert open(os.path.join(foreign, "precious.txt")).read() == "keep"
        ctl(sock, "quit")
        vm.wait(30)
    finally:
        vm.kill()


def disk_identity():
    disk = os.path.join(W, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    sock, snap = os.path.join(W, "e.sock"), os.path.join(W, "snapD")
    vm = VM([PVM, "run", "--kernel", loop, "--mem", "64M", "--disk", disk, "--api", sock])
    try:
        vm.expect("~", 30)
        out = ctl(sock, "snapshot", snap, "--exit")
        assert out.returncode == 0, out.stdout + out.stderr
        vm.wait(30)
    finally:
        vm.kill()
    assert os.path.exists(os.path.join(snap, "state")), "no snapshot saved"
    with open(disk, "r+b") as f:      # the disk changes behind the snapshot's back
        f.write(b"changed")
    p = subprocess.run([PVM, "run", "--restore", snap], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "changed since the snapshot" in p.stderr, p.stderr
    sock2 = os.path.join(W, "f.sock")
    vm = VM([PVM, "run", "--restore", snap, "--force-disks", "--api", sock2, "-v"])
    try:
        vm.expect("restored from", 30)
        assert ctl(sock2, "quit").returncode == 0
        assert vm.wait(30) == 0
    finally:
        vm.kill()


MEMFILL = os.path.join(os.path.dirname(os.path.abspath(PVM)), "tests", "guest", "memfill.elf")


def memory_identical():
    """A guest fills 256 MiB with a pattern and verifies it in a loop; after a
    save and a restore (eager and lazy) it completes a full pass again."""
    sock, snap = os.path.join(W, "m.sock"), os.path.join(W, "snapM")
    vm = VM([PVM, "run", "--kernel", MEMFILL, "--mem", "512M", "--cpus", "2",
             "--cmdline", "fill=256", "--api", sock])
    try:
        vm.expect("PASS-OK 1", 120)
        out = ctl(sock, "snapshot", snap, "--exit")
        assert out.returncode == 0, out.stdout + out.stderr
        assert vm.wait(60) == 0
    finally:
        vm.kill()
    used = os.stat(os.path.join(snap, "memory")).st_blocks * 512
    assert (256 << 20) <= used < (256 << 20) * 101 // 100 + (4 << 20), f"memory file {used}"
    for mode in ("eager", "lazy"):
        vm = VM([PVM, "run", "--restore", snap, "--restore-mode", mode])
        try:
            vm.expect("PASS-OK", 120)   # a complete verification pass after the restore
            assert b"MISMATCH" not in vm.buf and b"FILLED" not in vm.buf, vm.buf[-500:]
        finally:
            vm.kill()
    # Saving a lazily restored VM: RAM is then a private mapping of the old
    # file, not the memfd; the new snapshot must still hold every page.
    snap2, sock2 = os.path.join(W, "snapM2"), os.path.join(W, "m2.sock")
    vm = VM([PVM, "run", "--restore", snap, "--restore-mode", "lazy", "--api", sock2])
    try:
        vm.expect("PASS-OK", 120)
        out = ctl(sock2, "snapshot", snap2, "--exit")
        assert out.returncode == 0, out.stdout + out.stderr
        vm.wait(60)
    finally:
        vm.kill()
    used2 = os.stat(os.path.join(snap2, "memory")).st_blocks * 512
    assert abs(used2 - used) < (4 << 20), f"re-saved memory file {used2} vs {used}"
    vm = VM([PVM, "run", "--restore", snap2, "--restore-mode", "eager"])
    try:
        vm.expect("PASS-OK", 120)
        assert b"MISMATCH" not in vm.buf, vm.buf[-500:]
    finally:
        vm.kill()


def kill_during_save():
    """SIGKILL pocketvm at random points while it saves over a snapshot:
    every time, the snapshot left behind must restore and run."""
    import random
    import time
    rng = random.Random(1234)
    snap, sock = os.path.join(W, "snapK"), os.path.join(W, "k.sock")
    vm = VM([PVM, "run", "--kernel", MEMFILL, "--mem", "128M", "--cmdline", "fill=64",
             "--api", sock])
    try:
        vm.expect("PASS-OK 1", 120)
        out = ctl(sock, "snapshot", snap, "--exit")
        assert out.returncode == 0, out.stdout + out.stderr
        vm.wait(60)
    finally:
        vm.kill()
    kills = 0
    for i in range(50):
        vm = VM([PVM, "run", "--restore", snap, "--api", sock])
        try:
            vm.expect("HB", 60)                      # the previous snapshot loads and runs
            c = subprocess.Popen([PVM, "ctl", sock, "snapshot", snap],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, 0.12))         # a random point in the save
            vm.proc.kill()
            kills += 1
            c.wait(30)
        finally:
            vm.kill()
    vm = VM([PVM, "run", "--restore", snap])
    try:
        vm.expect("PASS-OK", 120)
        assert b"MISMATCH" not in vm.buf
    finally:
        vm.kill()
    left = [f for f in os.listdir(W) if f.startswith("snapK.tmp-")]
    assert len(left) <= 1, f"stale temporary directories: {left}"
    assert kills == 50


def disk_full():
    """A save that runs out of space reports it, keeps the old snapshot and
    the guest running. Needs a small file system: a 100 MiB tmpfs (root)."""
    if os.geteuid() != 0:
        print("   (skipped: needs root to mount a small tmpfs)")
        return
    mnt = os.path.join(W, "small")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100M", "tmpfs", mnt], check=True)
    try:
        snap, sock = os.path.join(mnt, "snap"), os.path.join(W, "full.sock")
        vm = VM([PVM, "run", "--kernel", MEMFILL, "--mem", "256M", "--cmdline", "fill=64",
                 "--api", sock])
        try:
            vm.expect("PASS-OK 1", 120)
            out = ctl(sock, "snapshot", snap)            # 64 MiB: fits
            assert out.returncode == 0, out.stdout + out.stderr
            before = open(os.path.join(snap, "state"), "rb").read()
            out = ctl(sock, "snapshot", snap)            # needs another 64 MiB: does not
            assert out.returncode != 0 and "no space left" in out.stdout, out.stdout
            assert open(os.path.join(snap, "state"), "rb").read() == before
            assert not [f for f in os.listdir(mnt) if ".tmp-" in f], os.listdir(mnt)
            st = ctl(sock, "status").stdout
            assert '"state":"running"' in st, st
            vm.expect("PASS-OK", 120)                    # the guest carries on
            ctl(sock, "quit")
            vm.wait(60)
        finally:
            vm.kill()
        vm = VM([PVM, "run", "--restore", snap])         # the old snapshot still loads
        try:
            vm.expect("PASS-OK", 120)
        finally:
            vm.kill()
    finally:
        subprocess.run(["umount", mnt])


check("memory-identical-after-restore", memory_identical)
check("disk-full-during-save", disk_full)
check("sigkill-during-save-x50", kill_during_save)
check("save-restore-roundtrip", roundtrip)
check("state-lifecycle", lifecycle)
check("refusals", refusals)
check("disk-identity", disk_identity)
shutil.rmtree(W, ignore_errors=True)
failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
