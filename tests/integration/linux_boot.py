#!/usr/bin/env python3
"""Boot the default Linux guest with several vCPUs and a disk, check the
shell, the vCPU count, a file on an ext4 disk prepared on the host, the
control socket, then reboot and expect exit status 0.

usage: linux_boot.py POCKETVM WORKDIR
"""
import os
import secrets
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from vmrunner import VM  # noqa: E402

BOOT_TIMEOUT = 240   # ~15 s on a tiny kernel here; generous for a loaded CI box
CMD_TIMEOUT = 60


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

        def reboot():
            vm.send("reboot -f\n")
            rc = vm.wait(CMD_TIMEOUT * 2)
            if rc != 0:
                raise AssertionError(f"exit status {rc}")
        check("reboot-exit-0", reboot)
    finally:
        vm.kill()
    failed = sum(1 for r in results if not r[1])
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
