#!/usr/bin/env python3
"""The Linux guest's own virtio_balloon driver against pocketvm's device:
stats arrive, free page reporting gives the host back the memory of a large
allocation the guest frees, inflate and deflate reach their targets and the
guest's free memory follows, the guest keeps answering, reboot ends with 0.

One boot (~20 s here); the guest allocates with /bin/memhog (guest/tools).

usage: linux_balloon.py POCKETVM WORKDIR
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from vmrunner import VM, Checks  # noqa: E402

BOOT_TIMEOUT = 240
CMD_TIMEOUT = 120
MIB = 1 << 20
HOG_MIB = 48        # the guest allocates, touches and frees this much
INFLATE_MIB = 32    # ~0.5 ms per page here: a few seconds


def main():
    pocketvm, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    sock = os.path.join(work, "balloon.sock")
    vm = VM([pocketvm, "run", "--cpus", "2", "--mem", "256M", "--balloon",
             "--balloon-policy", "off", "--api", sock],
            log_path=os.path.join(work, "balloon-console.log"))
    check = Checks("linux-balloon")

    def ctl(*args):
        out = subprocess.run([pocketvm, "ctl", sock, *args], capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"ctl {' '.join(args)}: rc={out.returncode} {out.stdout!r}")
        return json.loads(out.stdout)

    def until(what, cond, timeout):
        """Poll `ctl stats` until cond(stats) holds; return those stats."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = ctl("stats")
            if cond(last):
                return last
            time.sleep(0.25)  # polling interval of a condition with a deadline
        raise AssertionError(f"{what}: not within {timeout}s; last stats {last}")

    try:
        check("boot-to-ready", lambda: vm.expect("POCKETVM-READY", BOOT_TIMEOUT))

        state = {}

        def stats_arrive():
            s = until("guest stats", lambda s: "guest" in s and s["balloon"]["driver_ok"], 90)
            total = s["guest"]["total"]
            # MemTotal of a 256 MiB guest: the kernel's own reservations aside
            if not 180 * MIB < total <= 256 * MIB:
                raise AssertionError(f"guest total {total}")
            state["free0"] = s["guest"]["free"]
        check("stats-arrive", stats_arrive)

        def reporting():
            before = ctl("stats")["rss_kib"]
            vm.send(f"memhog {HOG_MIB}\n")
            vm.expect(f"HELD {HOG_MIB}", CMD_TIMEOUT)
            held = ctl("stats")
            if held["rss_kib"] < before + (HOG_MIB - 8) * 1024:
                raise AssertionError(f"RSS {before} -> {held['rss_kib']} KiB while the guest "
                                     f"holds {HOG_MIB} MiB")
            vm.send("\n")
            vm.expect(f"FREED {HOG_MIB}", CMD_TIMEOUT)
            # Free page reporting: the freed block goes back to the host. Linux
            # reports only whole free 4 MiB blocks, so a little of it may stay.
            s = until("RSS drop after the guest freed its allocation",
                      lambda s: s["rss_kib"] <= held["rss_kib"] - HOG_MIB // 2 * 1024, 90)
            print(f"     RSS {before} -> {held['rss_kib']} -> {s['rss_kib']} KiB, "
                  f"reported {s['balloon']['reported_mib']} MiB", flush=True)
        check("free-page-reporting", reporting)

        def inflate():
            free_before = ctl("stats")["guest"]["free"]
            t0 = time.monotonic()
            ctl("balloon", str(INFLATE_MIB))
            s = until("inflate", lambda s: s["balloon"]["actual_mib"] == INFLATE_MIB and
                      s["balloon"]["inflated_mib"] == INFLATE_MIB, CMD_TIMEOUT)
            print(f"     inflated {INFLATE_MIB} MiB in {time.monotonic() - t0:.1f} s", flush=True)
            # The guest's free memory follows (fresh stats after the inflate).
            s = until("guest free after inflate",
                      lambda s: s["guest"]["free"] <= free_before - (INFLATE_MIB - 8) * MIB, 60)
        check("inflate", inflate)

        def deflate():
            ctl("balloon", "0")
            until("deflate", lambda s: s["balloon"]["actual_mib"] == 0 and
                  s["balloon"]["inflated_mib"] == 0, CMD_TIMEOUT)
        check("deflate", deflate)

        def alive():
            vm.send("echo BALLOON-$((6*7))-ALIVE\n")
            vm.expect("BALLOON-42-ALIVE", CMD_TIMEOUT)
        check("guest-answers", alive)

        def reboot():
            vm.send("reboot -f\n")
            rc = vm.wait(CMD_TIMEOUT)
            if rc != 0:
                raise AssertionError(f"exit status {rc}")
        check("reboot-exit-0", reboot)
    finally:
        vm.kill()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
