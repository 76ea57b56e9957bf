#!/usr/bin/env python3
"""Snapshot integration tests on KVM with tiny hand-made guests:
save/restore round trips, the --state lifecycle, refusals with reasons.

usage: snapshot_test.py POCKETVM
"""
import os
import re
import shutil
import signal
import struct
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
    st = os.stat(os.path.join(snap, current_memory(snap)[0]))
    assert st.st_size == (64 << 20) + 4096, st   # RAM, then the trailer page
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


GUESTS = os.path.join(os.path.dirname(os.path.abspath(PVM)), "tests", "guest")
MEMFILL = os.path.join(GUESTS, "memfill.elf")
MEMDIRTY = os.path.join(GUESTS, "memdirty.elf")


def current_memory(snap):
    """The memory file the snapshot's state names (MEMORY section), and its
    generation; ("memory", 0) for a version 1 state without one."""
    b = open(os.path.join(snap, "state"), "rb").read()
    nreg = struct.unpack_from("<I", b, 44)[0]
    pos = 48 + 24 * nreg + 4 + 4
    while pos + 16 <= len(b):
        sid, _, _, ln, _ = struct.unpack_from("<IHHII", b, pos)
        if sid == 0x0004:
            gen, cur = struct.unpack_from("<QB", b, pos + 16 + 16)
            return ("memory.1" if cur else "memory"), gen
        if sid == 0xffff:
            break
        pos += 16 + ln
    return "memory", 0


def restored(snap, mode, until, env=None, timeout=120, count=1):
    """Restore @snap in @mode and wait for @count times @until (bytes);
    return the VM's output so far. The VM is killed afterwards."""
    vm = VM([PVM, "run", "--restore", snap, "--restore-mode", mode, "-v"], env=env)
    try:
        out = b"".join(vm.expect(until, timeout) for _ in range(count))
        assert b"MISMATCH" not in out and b"FILLED" not in out, out[-800:]
        return out
    finally:
        vm.kill()


def evict(snap):
    """Drop the snapshot's files from the page cache (they are synced, so
    clean): a loading-set restore prefetches only what is not cached."""
    for name in os.listdir(snap):
        path = os.path.join(snap, name)
        if os.path.isfile(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def finishes(snap, mode, env=None):
    """Restore a memfill guest saved after its first pass with passes=3: it
    must verify everything twice more and end the test itself (status 0)."""
    vm = VM([PVM, "run", "--restore", snap, "--restore-mode", mode, "-v"], env=env)
    try:
        rc = vm.wait(120)
        out = vm.buf
        assert rc == 0 and b"TEST-PASS memfill" in out and b"PASS-OK 3" in out, \
            f"{mode}: rc={rc} {out[-800:]!r}"
        assert b"MISMATCH" not in out and b"FILLED" not in out, out[-800:]
        return out.decode(errors="replace")
    finally:
        vm.kill()


def memory_identical():
    """A guest fills 256 MiB with a pattern and verifies it in a loop; after a
    save and a restore in every mode it completes two full passes again and
    ends the test itself. The loading-set modes first record a loading set,
    then use it; without userfaultfd the loading set is prefetched into the
    lazy mapping."""
    sock, snap = os.path.join(W, "m.sock"), os.path.join(W, "snapM")
    vm = VM([PVM, "run", "--kernel", MEMFILL, "--mem", "512M", "--cpus", "2",
             "--cmdline", "fill=256 passes=3", "--api", sock])
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
        finishes(snap, mode)
    ls = os.path.join(snap, "loadset")
    out = finishes(snap, "loadset")                  # records (index only)
    assert "records one" in out and os.path.exists(ls), out[-800:]
    out = finishes(snap, "loadset")                  # uses it: cached, nothing to prefetch
    assert "nothing to prefetch" in out, out[-800:]
    evict(snap)
    out = finishes(snap, "loadset")                  # not cached: prefetches it
    assert "of the loading set mapped" in out, out[-800:]
    out = finishes(snap, "loadset-uffd")             # an index only: pages from the memory file
    assert "(userfaultfd)" in out, out[-800:]
    os.unlink(ls)
    out = finishes(snap, "loadset-uffd")             # records with the pages' contents
    assert "records one" in out and os.path.getsize(ls) > (64 << 20), out[-800:]
    out = finishes(snap, "loadset-uffd")             # streams them
    assert "from the loading set" in out and " 0 MiB from" not in out, out[-800:]
    evict(snap)
    out = finishes(snap, "loadset-uffd", {"POCKETVM_NO_USERFAULTFD": "1"})
    assert "userfaultfd unavailable" in out and "of the loading set mapped" in out, out[-800:]
    # Saving a lazily restored VM: RAM is then a private mapping of the old
    # file, not the memfd; the new snapshot must still hold every page.
    snap2, sock2 = os.path.join(W, "snapM2"), os.path.join(W, "m2.sock")
    vm = VM([PVM, "run", "--restore", snap, "--restore-mode", "lazy", "--api", sock2])
    try:
        vm.expect("HB", 120)        # early in pass 2: the guest has a pass to go
        out = ctl(sock2, "snapshot", snap2, "--exit")
        assert out.returncode == 0, out.stdout + out.stderr
        vm.wait(60)
    finally:
        vm.kill()
    used2 = os.stat(os.path.join(snap2, "memory")).st_blocks * 512
    assert abs(used2 - used) < (4 << 20), f"re-saved memory file {used2} vs {used}"
    finishes(snap2, "eager")


def nonzero_bytes(path, size):
    """Bytes in 4 KiB pages of @path that are not all zeros (within @size)."""
    zero, n = bytes(4096), 0
    with open(path, "rb") as f:
        for _ in range(size // 4096):
            if f.read(4096) != zero:
                n += 4096
    return n


def save(vm, sock, snap, *flags, logs=None):
    """ctl snapshot; return (kind, KiB written, KiB punched) from the VM's log
    (appended to @logs if given)."""
    out = ctl(sock, "snapshot", snap, *flags)
    assert out.returncode == 0 and '"ok":true' in out.stdout, out.stdout + out.stderr
    log = vm.expect("save took", 60).decode(errors="replace")
    if logs is not None:
        logs.append(log)
    m = re.search(r"saved \S+ (in a new directory|rewriting the other memory file|"
                  r"incrementally) \(state \d+ bytes, memory[: ]+(\d+) (MiB stored|KiB written)"
                  r"(?:, (\d+) KiB punched)?", log)
    assert m, log[-600:]
    return m.group(1), int(m.group(2)), int(m.group(4) or 0)


def incremental():
    """memdirty rewrites blocks of 128 MiB all the time, every fourth
    generation all zeros. Saves into one directory go: a new directory, the
    other memory file completely, then incrementally (the union of the last
    two epochs). Two saves of a paused VM: the first writes the previous
    epoch's pages, the second nothing. Zero pages are holes (within 1% of
    the non-zero memory). Every restore mode resumes with consistent memory;
    a new process saves incrementally from its first save, also when RAM
    maps the file it writes into (a lazy restore's second save)."""
    sock, snap = os.path.join(W, "i.sock"), os.path.join(W, "snapI")
    vm = VM([PVM, "run", "--kernel", MEMDIRTY, "--mem", "256M", "--cmdline",
             "fill=128 every=8", "--api", sock, "-v"])
    try:
        vm.expect("PASS-OK 1", 120)
        kinds = [save(vm, sock, snap)[0]]
        vm.expect("PASS-OK", 60)
        kinds.append(save(vm, sock, snap)[0])
        vm.expect("PASS-OK", 60)
        kinds.append(save(vm, sock, snap)[0])
        vm.expect("PASS-OK", 60)
        assert ctl(sock, "pause").returncode == 0
        paused = [save(vm, sock, snap) for _ in range(3)]
        assert ctl(sock, "resume").returncode == 0
        vm.expect("PASS-OK", 60)
        kinds += [p[0] for p in paused] + [save(vm, sock, snap, "--exit")[0]]
        assert vm.wait(60) == 0
    finally:
        vm.kill()
    assert kinds == ["in a new directory", "rewriting the other memory file"] + \
        ["incrementally"] * 5, kinds
    # Paused: the first save writes the last two epochs' pages into the other
    # file, the second the last epoch's into the first file, the third nothing.
    (_, w1, p1), (_, w2, p2), (_, w3, p3) = paused
    assert w1 + p1 >= w2 + p2 > 0 and w3 == 0 and p3 == 0, paused
    name, _ = current_memory(snap)
    path = os.path.join(snap, name)
    data = nonzero_bytes(path, 256 << 20)
    alloc = os.stat(path).st_blocks * 512 - 4096  # the trailer page
    assert data <= alloc <= data * 101 // 100 + (64 << 10), f"{alloc} allocated, {data} data"
    for mode in ("eager", "lazy", "loadset", "loadset-uffd"):
        restored(snap, mode, b"PASS-OK", count=2)
    # A new process: its first save is incremental; RAM is a private mapping
    # of the current memory file, and the second save writes into that file.
    # The loading set this restore records keeps its order across the saves.
    ls = os.path.join(snap, "loadset")
    if os.path.exists(ls):
        os.unlink(ls)
    logs = []
    vm = VM([PVM, "run", "--restore", snap, "--restore-mode", "loadset", "--api", sock, "-v"])
    try:
        vm.expect("recorded a loading set", 60)
        kinds = [save(vm, sock, snap, logs=logs)[0]]
        vm.expect("PASS-OK", 60)
        kinds.append(save(vm, sock, snap, logs=logs)[0])
        vm.expect("PASS-OK", 60)
        kinds.append(save(vm, sock, snap, "--exit", logs=logs)[0])
        assert vm.wait(60) == 0
    finally:
        vm.kill()
    assert kinds == ["incrementally"] * 3, kinds
    assert all("loading set order kept" in log for log in logs) and os.path.exists(ls), logs
    evict(snap)
    out = restored(snap, "loadset", b"PASS-OK", count=2).decode(errors="replace")
    assert "of the loading set mapped" in out, out[-800:]
    restored(snap, "eager", b"PASS-OK", count=2)


def kill_during_incremental_save():
    """SIGKILL while memdirty's snapshot is being saved incrementally over
    the previous one: each round restores what the last left behind, saves
    once to completion (so both memory files are known), lets the guest
    rewrite memory, starts an incremental save and kills pocketvm at a
    random point of it. Every time, what is left restores with consistent
    memory."""
    import random
    import time
    rng = random.Random(4321)
    snap, sock = os.path.join(W, "snapKI"), os.path.join(W, "ki.sock")
    vm = VM([PVM, "run", "--kernel", MEMDIRTY, "--mem", "256M", "--cmdline",
             "fill=128 every=8", "--api", sock, "-v"])
    try:
        vm.expect("PASS-OK 1", 120)
        save(vm, sock, snap, "--exit")
        vm.wait(60)
    finally:
        vm.kill()
    killed = done = 0
    for i in range(30):
        vm = VM([PVM, "run", "--restore", snap, "--api", sock, "-v"])
        try:
            vm.expect("PASS-OK", 60)          # what the last round left loads and verifies
            save(vm, sock, snap)
            vm.expect("PASS-OK", 60)
            c = subprocess.Popen([PVM, "ctl", sock, "snapshot", snap],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            vm.expect("snapshot: saving ", 30)    # "saving DIR: KIND (why)"
            kind = vm.expect("\n", 30).decode(errors="replace")
            assert ": incremental" in kind, kind
            time.sleep(rng.uniform(0, 0.15))  # a random point in the save
            vm.proc.kill()
            out = c.communicate(timeout=30)[0]
            if b'"ok":true' in out:
                done += 1
            else:
                killed += 1
        finally:
            vm.kill()
    restored(snap, "lazy", b"PASS-OK", count=2)
    restored(snap, "eager", b"PASS-OK", count=2)
    print(f"   ({killed} incremental saves killed before they completed, {done} completed)")
    assert killed > 0


def loadset_ignored():
    """A loading set that is corrupt, truncated, stale (recorded against an
    older save) or not a file is ignored with a log line; the restore goes
    on and memory is identical. A corrupt chunk of stored pages is caught by
    its CRC before any of it reaches the guest."""
    snap = os.path.join(W, "snapM")          # memory_identical's, with a loading set
    ls = os.path.join(snap, "loadset")
    assert os.path.exists(ls), "memory_identical() leaves a loading set with data"
    good = open(ls, "rb").read()
    with open(ls, "r+b") as f:               # a stored page, not the index
        f.seek(len(good) - 5000)
        f.write(b"\xff")
    out = finishes(snap, "loadset-uffd")
    assert "corrupt (checksum)" in out, out[-800:]
    for what, data in (("index", good[:70] + bytes([good[70] ^ 1]) + good[71:]),
                       ("truncated", good[:len(good) // 2]), ("empty", b"")):
        open(ls, "wb").write(data)
        out = finishes(snap, "loadset")
        assert "ignored" in out, (what, out[-800:])
    os.unlink(ls)
    os.mkdir(ls)
    out = finishes(snap, "loadset")
    assert "ignored" in out, out[-800:]
    os.rmdir(ls)
    # Stale: the directory saved again since the loading set was recorded.
    open(ls, "wb").write(good)
    sock = os.path.join(W, "st.sock")
    vm = VM([PVM, "run", "--restore", snap, "--restore-mode", "eager", "--api", sock, "-v"])
    try:
        vm.expect("HB", 60)
        save(vm, sock, snap, "--exit")
        vm.wait(60)
    finally:
        vm.kill()
    assert not os.path.exists(ls), "a save must drop the loading set it made stale"
    open(ls, "wb").write(good)
    out = finishes(snap, "loadset")
    assert "stale" in out, out[-800:]


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
check("loadset-corrupt-stale-ignored", loadset_ignored)
check("incremental-save-restore", incremental)
check("sigkill-during-incremental-save-x30", kill_during_incremental_save)
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
