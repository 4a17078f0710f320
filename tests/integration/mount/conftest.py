"""Fixtures for the mounted-daemon suites (like libfuse's and sshfs's tests).

- `kvs`: a kvs-local server for the module (quotas on, as the service has them).
- `stack`: the export stack as (rgw, kvs, start) (the shared `export_stack`, tests/integration/conftest.py).
- `xmount`: a factory; `xmount(prefix="kvs", endpoint=None, name=None, start=True, **options)`
  mounts kvs-local of the export stack with export/ = s3://exports/PREFIX on the gateway (or on
  endpoint, e.g. a FaultProxy); unmounted and checked at teardown as `mount` does.
- `mount`: a factory; `mount(srv, **options)` starts kvsfs against srv as users do (it goes to the
  background once mounted; `foreground=True` runs `kvsfs -f` instead), and returns a Mount. Every
  mount is unmounted at teardown, even when the test failed (`fusermount3 -u`, then `-uz` if
  busy), and the test fails if the daemon logged a warning or an error that the test did not
  declare with `m.expect_log(regex)`, logged a sanitizer report, exited non-zero, or did not exit
  after its unmount.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from kvsfs_procs import daemon_pids, reap  # noqa: F401 (re-exported for the suites)


SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")


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
        self.exit_status = None
        self.reaped = False
        self.outlived = False
        self.killed = False
        self.expected = []
        self.logf = None
        os.makedirs(self.dir, exist_ok=True)

    def environ(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=self.srv.access_key, AWS_SECRET_ACCESS_KEY=self.srv.secret_key,
                   AWS_REGION=self.srv.region, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
        if self.env:
            env.update(self.env)
        return env

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
                           timeout=timeout)
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
                                     stderr=subprocess.STDOUT)
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
        bad = []
        for line in self.log().splitlines():
            if SANITIZER_REPORT.search(line):
                bad.append(line)
            elif "kvsfs[warning]" in line or "kvsfs[error]" in line:
                if not any(p.search(line) for p in self.expected):
                    bad.append(line)
        if self.outlived:
            bad.append(f"kvsfs (pid {self.pid}) outlived its unmount of {self.dir}")
        if self.exit_status not in (None, 0) and not self.killed:
            bad.append(f"kvsfs (pid {self.pid}) exited with status {self.exit_status}")
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

    def stop(self):
        if self.pid is None:
            return
        if os.path.ismount(self.dir):
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


@pytest.fixture(scope="module")
def kvs(kvs_servers, request):
    return kvs_servers.start(request)


@pytest.fixture(scope="module")
def stack(export_stack):
    return export_stack.rgw, export_stack.kvs, export_stack.start


@pytest.fixture
def xmount(export_stack, mount):
    mounts = []

    def make(prefix="kvs", endpoint=None, name=None, start=True, **options):
        o = {"export": f"s3://{export_stack.bucket}/{prefix}",
             "s3_endpoint": endpoint or export_stack.rgw.endpoint, "s3_path_style": True}
        o.update(options)
        mounts.append(1)
        return mount(export_stack.kvs, name=name or f"x{len(mounts) - 1}", start=start, **o)
    return make


@pytest.fixture
def mount(build_dir, tmp_path):
    mounts = []
    kvsfs = str(build_dir / "src" / "kvsfs")

    def make(srv, name=None, env=None, foreground=False, start=True, **options):
        m = Mount(kvsfs, srv, tmp_path, options, env=env, name=name or f"mnt{len(mounts)}",
                  foreground=foreground)
        mounts.append(m)
        return m.start() if start else m

    yield make
    problems = []
    for m in mounts:
        m.stop()
        problems += m.unexpected_log_lines()
    assert not problems, "kvsfs logged unexpected warnings/errors:\n" + "\n".join(problems)


def fragment_files(root):
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if f.endswith(".mkv")]
    return sorted(out)


_AM_CLIENTS = {}


def retry_throttled(fn, *a, **kw):
    """Calls a boto3 operation, backing off on ClientLimitExceededException (as KVS asks)."""
    from botocore.exceptions import ClientError
    for attempt in range(30):
        try:
            return fn(*a, **kw)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ClientLimitExceededException":
                raise
            time.sleep(min(2.0, 0.2 * (attempt + 1)))
    raise AssertionError("throttled for too long")


def archived_media(srv, stream):
    key = (srv.url, stream)
    if key not in _AM_CLIENTS:
        import boto3
        from kvs_local.testing import boto3_client
        kv = boto3_client(srv, "kinesisvideo")
        ep = retry_throttled(kv.get_data_endpoint, StreamName=stream,
                             APIName="GET_MEDIA_FOR_FRAGMENT_LIST")["DataEndpoint"]
        _AM_CLIENTS[key] = boto3.client("kinesis-video-archived-media", endpoint_url=ep,
                                        region_name=srv.region, aws_access_key_id=srv.access_key,
                                        aws_secret_access_key=srv.secret_key)
    return _AM_CLIENTS[key]


def gmffl(srv, stream, numbers):
    """GetMediaForFragmentList through boto3 (the independent client)."""
    am = archived_media(srv, stream)
    r = retry_throttled(am.get_media_for_fragment_list, StreamName=stream, Fragments=list(numbers))
    return r["Payload"].read()


def xattr(path, name):
    return os.getxattr(path, name).decode()
