"""Mount: one kvsfs daemon mounted for a test (the `mount` and `xmount` fixtures of
tests/integration/mount/conftest.py make them and unmount them at teardown)."""
import os
import re
import signal
import subprocess
import time

from kvsfs_procs import daemon_pids, reap

from .helpers import daemon_env, unexpected_lines


def _as_from_a_shell():
    """kvsfs starts with SIGINT and SIGHUP at their defaults, as a user's shell starts it, even
    when the test run itself was started in the background (nohup, `&` without job control),
    where they are ignored: libfuse keeps an ignored signal ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


class Mount:
    """One kvsfs mount. By default kvsfs runs as users run it: `kvsfs -o ... MNT` goes to the
    background once mounted (the log goes to a file with log_file=); foreground=True runs
    `kvsfs -f` as a child of the test instead. Either way `pid` is the daemon's, `signal()`
    reaches it, `stop()` unmounts and waits for it to exit, and `outlived` records a daemon
    that did not exit after its unmount (a failure of the test)."""

    def __init__(self, kvsfs, srv, root, options, env=None, name="mnt", foreground=False):
        self.kvsfs = kvsfs
        self.srv = srv
        self.dir = str(root / name)
        self.cache = str(root / (name + "-cache"))
        self.log_path = str(root / (name + ".log"))
        self.options = options
        self.env = env
        self.foreground = foreground
        self.proc = None      # the kvsfs -f child (foreground only)
        self.pid = None       # the daemon's pid, whichever mode
        self.pid_stopped = None  # the pid it had, once stop() ran
        self.exit_status = None
        self.reaped = False
        self.outlived = False
        self.killed = False
        self.expected = []
        self.logf = None
        os.makedirs(self.dir, exist_ok=True)

    def environ(self):
        return daemon_env(self.srv, self.env)

    def option_string(self):
        opts = [f"endpoint={self.srv.url}", f"cache_dir={self.cache}", f"log_file={self.log_path}"]
        for k, v in self.options.items():
            opts.append(k if v is True else f"{k}={v}")
        return ",".join(opts)

    def argv(self):
        return [self.kvsfs] + (["-f"] if self.foreground else []) + ["-o", self.option_string(),
                                                                     self.dir]

    def start(self, timeout=30):
        self.exit_status = None
        self.reaped = False
        self.killed = False
        if self.foreground:
            return self._start_foreground(timeout)
        r = subprocess.run(self.argv(), env=self.environ(), capture_output=True, text=True,
                           timeout=timeout, preexec_fn=_as_from_a_shell)
        if r.returncode != 0:
            raise AssertionError(f"kvsfs exited with {r.returncode}: {r.stderr}{self.log()}")
        if not os.path.ismount(self.dir):
            raise AssertionError(f"kvsfs returned 0 but {self.dir} is not mounted: {self.log()}")
        pids = daemon_pids(self.dir)
        if len(pids) != 1:
            raise AssertionError(f"expected one kvsfs daemon for {self.dir}, found {pids}")
        self.pid = pids[0]
        return self

    def _start_foreground(self, timeout):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), env=self.environ(), stdout=self.logf,
                                     stderr=subprocess.STDOUT, preexec_fn=_as_from_a_shell)
        self.pid = self.proc.pid
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.ismount(self.dir):
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"kvsfs exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"kvsfs did not mount within {timeout} s: {self.log()}")

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def expect_log(self, pattern):
        """Declares that warning/error lines matching pattern are expected."""
        self.expected.append(re.compile(pattern))

    def unexpected_log_lines(self):
        bad = unexpected_lines(self.log(), self.expected)
        if self.outlived:
            bad.append(f"kvsfs (pid {self.pid}) outlived its unmount of {self.dir}")
        if self.exit_status not in (None, 0) and not self.killed:
            bad.append(f"kvsfs (pid {self.pid or self.pid_stopped}) exited "
                       f"with status {self.exit_status}")
        return bad

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout=30):
        """Waits for the daemon to exit; returns its exit status (-N for signal N) when it is
        our child or the reaper's (see reap()), else None. Raises TimeoutError."""
        if self.reaped:
            return self.exit_status
        if self.proc is not None:
            try:
                self.exit_status = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as e:
                raise TimeoutError(str(e))
        else:
            self.exit_status = reap(self.pid, timeout)
        self.reaped = True
        return self.exit_status

    def kill_hard(self):
        """SIGKILL (a crash): the mount is left dead and lazily removed, as after a real crash."""
        self.killed = True
        self.signal(signal.SIGKILL)
        self.wait(timeout=30)
        subprocess.run(["fusermount3", "-uz", self.dir], capture_output=True)
        self._done()

    def _done(self):
        if self.logf:
            self.logf.close()
            self.logf = None
        self.proc = None

    def in_mount_table(self):
        """True while the kernel still has this mount, also when its daemon died (a dead FUSE
        mount fails stat with ENOTCONN, so os.path.ismount says False)."""
        with open("/proc/self/mounts") as f:
            return any(l.split()[1] == self.dir for l in f)

    def stop(self):
        if self.pid is None:
            if self.in_mount_table():
                subprocess.run(["fusermount3", "-uz", self.dir], capture_output=True)
            return
        if self.in_mount_table():
            r = subprocess.run(["fusermount3", "-u", self.dir], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.dir], capture_output=True)
        if not self.killed:
            try:
                self.wait(timeout=30)
            except TimeoutError:
                self.outlived = True
                os.kill(self.pid, signal.SIGKILL)
                try:
                    self.wait(timeout=10)
                except TimeoutError:
                    pass
                subprocess.run(["fusermount3", "-uz", self.dir], capture_output=True)
        self._done()
        self.pid_stopped = self.pid
        self.pid = None

    def path(self, *parts):
        return os.path.join(self.dir, *parts)
