"""Driver: one kvsfs-fs process (tests/tools/fs_driver.c), the filesystem layer run in-process
without FUSE; it reads one operation per line and answers one line each ("ok ..." or
"err ENAME"), see the top of fs_driver.c for the language. The `fs_driver` fixture of
tests/integration/fs makes them and checks them at teardown."""
import os
import re
import select
import subprocess

from .helpers import daemon_env, unexpected_lines


class Driver:
    """One kvsfs-fs process. op(line) sends one operation and returns its answer line."""

    def __init__(self, exe, srv, cache, log_path, options, timeout=300):
        self.log_path = log_path
        self.timeout = timeout
        self.expected = []
        self.status = None
        args = [exe, "--endpoint", srv.url, "--cache", str(cache), "--log", log_path]
        for k, v in options.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                args.append(flag)
            elif v is not None and v is not False:
                args += [flag, str(v)]
        self.proc = subprocess.Popen(args, env=daemon_env(srv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._buf = b""

    def op(self, line: str) -> str:
        """Runs one operation; returns its answer ("ok ..." or "err ENAME")."""
        if self.proc.poll() is not None:
            raise AssertionError(f"kvsfs-fs is gone ({self.proc.returncode}): {self.stderr_and_log()}")
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.proc.wait(10)
            raise AssertionError(f"kvsfs-fs ended ({self.proc.returncode}): {self.stderr_and_log()}")
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            ready, _, _ = select.select([fd], [], [], self.timeout)
            if not ready:
                raise AssertionError(f"kvsfs-fs did not answer {line!r} within {self.timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait(10)
                raise AssertionError(f"kvsfs-fs ended ({self.proc.returncode}) at {line!r}: "
                                     f"{self.stderr_and_log()}")
            self._buf += chunk
        answer, self._buf = self._buf.split(b"\n", 1)
        return answer.decode()

    def ok(self, line: str) -> str:
        """Runs one operation that must succeed; returns what follows "ok"."""
        r = self.op(line)
        assert r == "ok" or r.startswith("ok "), f"{line!r}: {r}"
        return r[3:]

    def errno(self, line: str) -> str:
        """Runs one operation that must fail; returns the errno name."""
        r = self.op(line)
        assert r.startswith("err "), f"{line!r} should have failed: {r}"
        return r[4:]

    def stat(self, path: str) -> dict:
        return parse_attr(self.ok(f"stat {path}"))

    def ls(self, path: str, plus=False) -> dict:
        """{name: (type, size)} of a folder."""
        return parse_ls(self.ok(f"ls {path}" + (" plus" if plus else "")))

    def cat(self, path: str) -> tuple:
        """(size, sha256 hex) of the whole file, read as cat does."""
        n, h = self.ok(f"cat {path}").split()
        return int(n), h

    def expect_log(self, pattern):
        """Declares that warning/error lines matching pattern are expected."""
        self.expected.append(re.compile(pattern))

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr_and_log(self) -> str:
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
        return err + self.log()

    def close(self):
        """Ends the script (open files are closed as at exit); returns the exit status."""
        if self.status is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.status = self.proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.status = self.proc.wait()
                raise AssertionError("kvsfs-fs did not exit after the end of its script")
            self.stderr = self.proc.stderr.read().decode(errors="replace")
            self.proc.stdout.close()
            self.proc.stderr.close()
        return self.status

    def unexpected_log_lines(self):
        bad = unexpected_lines(self.log() + getattr(self, "stderr", ""), self.expected)
        if self.status not in (None, 0):
            bad.append(f"kvsfs-fs exited with status {self.status}")
        return bad


def parse_attr(rest: str) -> dict:
    """"ino=5 type=f mode=0644 ..." -> {"ino": 5, "type": "f", "mode": 0o644, ...}"""
    out = {}
    for kv in rest.split():
        k, v = kv.split("=", 1)
        out[k] = v if k == "type" else int(v, 8) if k == "mode" else int(v)
    return out


def unquote(s: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def parse_ls(rest: str) -> dict:
    parts = rest.split()
    out = {}
    for e in parts[1:]:
        name, kind, size = e.split(":")
        out[unquote(name)] = (kind, int(size))
    return out
