"""Drive a pocketvm process over its serial console (stdin/stdout pipes).

Used by the integration tests: start the VM, wait for markers with a time
bound, type commands, collect the exit status. No sleeps: every wait is for
a line of output or for process exit, with a deadline.
"""
import os
import select
import subprocess
import time
import traceback


class VM:
    def __init__(self, argv, log_path=None, env=None):
        """@env: variables added to this process's environment for the VM."""
        self.log = open(log_path, "wb") if log_path else None
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, **env} if env else None)
        self.buf = b""

    def _read_some(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.proc.stdout], [], [], left)
        if not r:
            return False
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return False
        if self.log:
            self.log.write(data)
            self.log.flush()
        self.buf += data
        return True

    def expect(self, needle, timeout):
        """Wait until bytes `needle` appear; consume through them."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(needle)
            if i >= 0:
                before = self.buf[:i]
                self.buf = self.buf[i + len(needle):]
                return before
            if not self._read_some(deadline):
                tail = self.buf[-2000:].decode(errors="replace")
                raise TimeoutError(f"no {needle!r} within {timeout}s; last output:\n{tail}")

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if not self._read_some(deadline) and time.monotonic() >= deadline:
                self.proc.kill()
                raise TimeoutError(f"VM did not exit within {timeout}s")
        while self._read_some(time.monotonic() + 0.5):
            pass
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Checks:
    """Run named checks, print "ok   PREFIX:NAME" or "FAIL PREFIX:NAME: why
    (line N)" for each, and end with the "N passed, N failed" line the suite
    runner counts."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.results = []

    def __call__(self, name, fn):
        try:
            fn()
            self.results.append(True)
            print(f"ok   {self.prefix}:{name}", flush=True)
        except Exception as e:  # report it and go on with the next check
            self.results.append(False)
            line = traceback.extract_tb(e.__traceback__)[-1].lineno
            print(f"FAIL {self.prefix}:{name}: {e!r} (line {line})", flush=True)

    def all_passed(self):
        return all(self.results)

    def finish(self):
        """Print the closing line; return the exit status."""
        failed = self.results.count(False)
        print(f"{len(self.results) - failed} passed, {failed} failed")
        return 1 if failed else 0
