"""Fixtures for the mounted-daemon suites (like libfuse's and sshfs's tests).

- `kvs`: a kvs-local server for the module (quotas on, as the service has them).
- `mount`: a factory; `mount(srv, **options)` starts `kvsfs -f` in a subprocess against srv, waits
  for the mount, and returns a Mount. Every mount is unmounted at teardown, even when the test
  failed (`fusermount3 -u`, then `-uz` if busy), and the test fails if the daemon logged a warning
  or an error that the test did not declare with `m.expect_log(regex)`.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from kvs_local.testing import start_server


class Mount:
    def __init__(self, kvsfs, srv, root, options, env=None, name="mnt"):
        self.kvsfs = kvsfs
        self.srv = srv
        self.dir = str(root / name)
        self.cache = str(root / (name + "-cache"))
        self.log_path = str(root / (name + ".log"))
        self.options = options
        self.env = env
        self.proc = None
        self.expected = []
        os.makedirs(self.dir, exist_ok=True)

    def environ(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=self.srv.access_key, AWS_SECRET_ACCESS_KEY=self.srv.secret_key,
                   AWS_REGION=self.srv.region, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
        if self.env:
            env.update(self.env)
        return env

    def argv(self):
        opts = [f"endpoint={self.srv.url}", f"cache_dir={self.cache}"]
        for k, v in self.options.items():
            opts.append(k if v is True else f"{k}={v}")
        return [self.kvsfs, "-f", "-o", ",".join(opts), self.dir]

    def start(self, timeout=15):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), env=self.environ(), stdout=self.logf,
                                     stderr=subprocess.STDOUT)
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
            if "kvsfs[warning]" in line or "kvsfs[error]" in line:
                if not any(p.search(line) for p in self.expected):
                    bad.append(line)
        return bad

    def stop(self):
        if self.proc is None:
            return
        if os.path.ismount(self.dir):
            r = subprocess.run(["fusermount3", "-u", self.dir], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.dir], capture_output=True)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            subprocess.run(["fusermount3", "-uz", self.dir], capture_output=True)
        self.logf.close()
        self.proc = None

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


@pytest.fixture(scope="module")
def kvs(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("kvs"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def mount(build_dir, tmp_path):
    mounts = []
    kvsfs = str(build_dir / "src" / "kvsfs")

    def make(srv, name=None, env=None, **options):
        m = Mount(kvsfs, srv, tmp_path, options, env=env, name=name or f"mnt{len(mounts)}")
        mounts.append(m)
        return m.start()

    yield make
    problems = []
    for m in mounts:
        m.stop()
        if m.proc is None:
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
