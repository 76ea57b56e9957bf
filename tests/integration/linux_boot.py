#!/usr/bin/env python3
"""Boot the default Linux guest with several vCPUs and a disk, check the
shell, the vCPU count, a file on an ext4 disk prepared on the host, the
control socket; then snapshot it with --exit (after setting its clock from
the host and writing a file to the disk) and restore it: the shell answers,
the file reads back from the disk, the guest's clock is right; then reboot
the restored guest and expect exit status 0. One boot: they are slow here.

usage: linux_boot.py POCKETVM WORKDIR
"""
import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from vmrunner import VM  # noqa: E402

BOOT_TIMEOUT = 240   # ~15 s on a tiny kernel here; generous for a loaded CI box
CMD_TIMEOUT = 60
SAVED_SECONDS = 8    # time spent saved: a guest clock that stood still is this far behind
CLOCK_SLACK = 4      # seconds the guest's clock may be off after the restore


def main():
    pocketvm, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    token = secrets.token_hex(8)
    content = os.path.join(work, "disk-content")
    os.makedirs(content, exist_ok=True)
    with open(os.path.join(content, "hello.txt"), "w") as f:
        f.write(f"token-{token}\n")
    disk = os.path.join(work, "disk.img")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([os.path.join(here, "mkdisk.sh"), disk, content + "/."], check=True,
                   stdout=subprocess.DEVNULL)
    sock = os.path.join(work, "api.sock")
    cpus = 2
    vm = VM([pocketvm, "run", "--cpus", str(cpus), "--mem", "256M",
             "--disk", disk, "--api", sock], log_path=os.path.join(work, "console.log"))
    results = []
    alive = {"vm": vm}  # the VM that runs now: the original, then the restored one

    def check(name, fn):
        try:
            fn()
            results.append((name, True, ""))
            print(f"ok   linux:{name}", flush=True)
        except Exception as e:  # report and continue with the next check
            results.append((name, False, str(e)))
            print(f"FAIL linux:{name}: {e}", flush=True)

    try:
        check("boot-to-ready", lambda: vm.expect("POCKETVM-READY", BOOT_TIMEOUT))

        def nproc():
            vm.send("echo NPROC=$(nproc)\n")
            vm.expect(f"NPROC={cpus}", CMD_TIMEOUT)
        check("nproc", nproc)

        def disk_file():
            vm.send("cat /mnt/hello.txt\n")
            vm.expect(f"token-{token}", CMD_TIMEOUT)
        check("disk-read", disk_file)

        def ctl():
            for cmd, want in (("status", '"state":"running"'), ("pause", '"paused"'),
                              ("status", '"state":"paused"'), ("resume", '"running"')):
                out = subprocess.run([pocketvm, "ctl", sock, cmd], capture_output=True,
                                     text=True, timeout=30)
                if out.returncode != 0 or want not in out.stdout:
                    raise AssertionError(f"ctl {cmd}: rc={out.returncode} {out.stdout!r}")
            if (os.stat(sock).st_mode & 0o777) != 0o600:
                raise AssertionError("control socket is not mode 0600")
            vm.send("echo STILL-$((1+1))-ALIVE\n")
            vm.expect("STILL-2-ALIVE", CMD_TIMEOUT)
        check("ctl-pause-resume", ctl)

        # Snapshot with --exit, restore, and carry on in the restored guest.
        snap = os.path.join(work, "snapshot")
        sock2 = os.path.join(work, "api-restored.sock")
        token2 = secrets.token_hex(8)

        clock = {}

        def uptime(v):
            """The guest's uptime (a shell builtin reads it: no fork, so no
            half-second of guest time in between) and the host's time."""
            v.send("read u i </proc/uptime; echo UP-$((4+4))=$u-END\n")
            v.expect("UP-8=", CMD_TIMEOUT)
            return float(v.expect("-END", CMD_TIMEOUT).decode().strip()), time.monotonic()

        def snapshot_exit():
            # The guest has no RTC: its clock starts at 1970 unless set.
            vm.send(f"date -s @{int(time.time() + 0.5)} >/dev/null; echo CLOCK-$((2+3))-SET\n")
            vm.expect("CLOCK-5-SET", CMD_TIMEOUT)
            vm.send(f"echo snap-{token2} >/mnt/snap.txt; sync; echo SYNCED-$((3*3))\n")
            vm.expect("SYNCED-9", CMD_TIMEOUT)
            clock["before"] = uptime(vm)
            out = subprocess.run([pocketvm, "ctl", sock, "snapshot", snap, "--exit"],
                                 capture_output=True, text=True, timeout=CMD_TIMEOUT)
            if out.returncode != 0 or '"ok":true' not in out.stdout:
                raise AssertionError(f"ctl snapshot --exit: rc={out.returncode} "
                                     f"{out.stdout.strip()} {out.stderr.strip()}")
            rc = vm.wait(CMD_TIMEOUT)
            if rc != 0:
                raise AssertionError(f"exit status {rc} after snapshot --exit")
            alive["vm"] = None
        check("snapshot-exit", snapshot_exit)

        def restore():
            if alive["vm"] is not None:
                raise AssertionError("no snapshot was taken")
            # Time passes while the VM is saved (a delay, not a synchronisation):
            # a guest clock that stood still would be this far behind.
            time.sleep(SAVED_SECONDS)
            t0 = time.monotonic()
            vm2 = VM([pocketvm, "run", "--restore", snap, "--api", sock2],
                     log_path=os.path.join(work, "console-restored.log"))
            alive["vm"] = vm2
            vm2.send("echo RESTORED-$((6*7))\n")
            vm2.expect("RESTORED-42", CMD_TIMEOUT)
            print(f"   restore: {time.monotonic() - t0:.3f} s from starting pocketvm "
                  "to the shell's answer", flush=True)
            out = subprocess.run([pocketvm, "ctl", sock2, "status"], capture_output=True,
                                 text=True, timeout=30)
            if f'"vcpus":{cpus}' not in out.stdout or '"running"' not in out.stdout:
                raise AssertionError(f"ctl status after restore: {out.stdout!r}")
        check("restore-shell-answers", restore)

        def restored_file():
            v = alive["vm"]
            # Drop the page cache first, so that the file comes from the disk.
            v.send("echo 3 >/proc/sys/vm/drop_caches; cat /mnt/snap.txt\n")
            v.expect(f"snap-{token2}", CMD_TIMEOUT)
        check("restore-file-reads-back", restored_file)

        def restored_clock():
            v = alive["vm"]
            # The guest's clock moved on by the time spent saved: its uptime
            # grew as much as the host's time did (a clock that stood still
            # while saved would be SAVED_SECONDS short).
            g0, h0 = clock["before"]
            g1, h1 = uptime(v)
            print(f"   guest uptime grew {g1 - g0:.2f} s while the host's clock moved "
                  f"{h1 - h0:.2f} s", flush=True)
            if abs((g1 - g0) - (h1 - h0)) > 1.5:
                raise AssertionError(f"guest uptime +{g1 - g0:.2f} s, host +{h1 - h0:.2f} s")
            # Wall clock: set with `date -s` before the snapshot; date forks, so
            # the slack covers a fork or two of interpreted guest kernel.
            sent = time.time()
            v.send("echo GUEST-$((1+1))-TIME=$(date +%s)-END\n")
            v.expect("GUEST-2-TIME=", CMD_TIMEOUT)
            guest = int(v.expect("-END", CMD_TIMEOUT).decode().strip())
            host = (sent + time.time()) / 2
            print(f"   guest clock after restore: {guest - host:+.1f} s from the host's "
                  f"({SAVED_SECONDS} s spent saved)", flush=True)
            if abs(guest - host) > CLOCK_SLACK:
                raise AssertionError(f"guest time {guest}, host time {host:.1f}")
        check("restore-clock-right", restored_clock)

        def reboot():
            v = alive["vm"]
            if v is None:
                raise AssertionError("no VM left to reboot")
            v.send("reboot -f\n")
            rc = v.wait(CMD_TIMEOUT * 2)
            if rc != 0:
                raise AssertionError(f"exit status {rc}")
        check("reboot-exit-0", reboot)
    finally:
        vm.kill()
        if alive["vm"]:
            alive["vm"].kill()
    failed = sum(1 for r in results if not r[1])
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
