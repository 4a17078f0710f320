"""Start and drive a local RADOS Gateway (scripts/s3-local) from Python tests.

    from s3_local import start_rgw

    rgw = start_rgw(tmp_path)          # fresh cluster in tmp_path/s3-local, free ports, ~2 s
    try:
        s3 = rgw.s3()                  # boto3 client: path-style, SigV4, no retries
        rgw.make_bucket("media")
        subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3", "ls"],
                       env=rgw.aws_env(), check=True)
        rgw.stop_gateway()             # S3 port dead, data kept (kill=True: SIGKILL radosgw)
        rgw.start_gateway()            # same port, same data
    finally:
        rgw.kill()                     # or rgw.stop(): clean stop, the folder can be restarted

Attributes: endpoint ("http://127.0.0.1:PORT"), port, access_key, secret_key, region ("us-east-1";
RGW accepts any region and does not check the scope's region or service), dir (the cluster folder).

A pytest fixture (put it in the suite's conftest.py or test file; one cluster per module keeps
suites fast, a cluster takes ~150 MB of RAM):

    @pytest.fixture(scope="module")
    def rgw(tmp_path_factory):
        r = start_rgw(tmp_path_factory.mktemp("rgw"))
        try:
            yield r
        finally:
            r.kill()

Every Rgw still running when the Python process exits is killed (atexit), so an interrupted run
leaves no daemons behind. Needs the Debian 12 packages radosgw ceph-mon ceph-osd ceph-common curl
(start_rgw raises RgwError naming them when they are missing).
"""
from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import uuid

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3-local"
AWS_CLI = "/usr/bin/aws"
REGION = "us-east-1"
PACKAGES = ("radosgw", "ceph-mon", "ceph-osd", "ceph-common", "curl")
# ports the OSD binds to (Ceph's ms bind port range): never give these to the gateway or the mon
_OSD_PORTS = range(6800, 7301)

_live: set["Rgw"] = set()
_live_lock = threading.Lock()


class RgwError(RuntimeError):
    """scripts/s3-local failed; the message holds its output (with the daemons' log tails)."""


def free_port(exclude: set[int] | None = None) -> int:
    """A TCP port free on 127.0.0.1 right now (from the kernel's ephemeral range)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _OSD_PORTS and port not in (exclude or set()):
            return port
    raise RgwError("no free port found")


def have_packages() -> bool:
    """True when the programs scripts/s3-local needs are installed."""
    return all(shutil.which(p) for p in ("ceph-mon", "ceph-osd", "radosgw", "ceph", "curl"))


def _run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


class Rgw:
    """One local cluster (mon + memstore OSD + radosgw) made by scripts/s3-local."""

    def __init__(self, directory: pathlib.Path, port: int, access_key: str, secret_key: str):
        self.dir = pathlib.Path(directory)
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = REGION

    def __repr__(self) -> str:
        return f"Rgw({self.endpoint}, dir={self.dir})"

    def __enter__(self) -> "Rgw":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    # --- clients -----------------------------------------------------------------------------
    def s3(self, endpoint: str | None = None, *, access_key: str | None = None,
           secret_key: str | None = None, retries: int = 0, **config):
        """A boto3 S3 client (path-style, SigV4, `retries` retries, i.e. none by default).
        endpoint: talk to another address (e.g. a FaultProxy's) with the same credentials."""
        import boto3
        from botocore.config import Config

        opts = dict(signature_version="s3v4", s3={"addressing_style": "path"},
                    retries={"total_max_attempts": retries + 1, "mode": "standard"},
                    connect_timeout=10, read_timeout=60)
        opts.update(config)
        cfg = Config(**opts)
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint or self.endpoint, region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key, config=cfg)

    def aws_env(self, base: dict | None = None) -> dict:
        """Environment for /usr/bin/aws (pass --endpoint-url self.endpoint): these credentials,
        no config or credentials files, no instance metadata, no pager."""
        env = dict(os.environ if base is None else base)
        for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                  "AWS_CA_BUNDLE", "PYTHONPATH", "PYTHONHOME"):
            env.pop(k, None)
        env.update({
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "AWS_MAX_ATTEMPTS": "1",
        })
        return env

    def aws(self, *args: str, check: bool = True, endpoint: str | None = None,
            input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run /usr/bin/aws --endpoint-url ENDPOINT ARGS... (bytes output)."""
        return subprocess.run([AWS_CLI, "--endpoint-url", endpoint or self.endpoint, *args],
                              env=self.aws_env(), input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=check, timeout=timeout)

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name when none is given) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        self.s3().create_bucket(Bucket=name)
        return name

    # --- lifecycle ---------------------------------------------------------------------------
    def _script(self, *args: str) -> str:
        r = _run_script(*args)
        if r.returncode != 0:
            raise RgwError(f"scripts/s3-local {' '.join(args)} failed ({r.returncode}):\n"
                           f"{r.stderr}{r.stdout}")
        return r.stdout

    def status(self) -> tuple[bool, str]:
        """(everything running and answering, the status text)."""
        r = _run_script("status", str(self.dir))
        return r.returncode == 0, r.stdout + r.stderr

    def stop(self) -> None:
        """Clean stop of all daemons; the data is saved and start() brings it back."""
        self._script("stop", str(self.dir))
        _forget(self)

    def kill(self) -> None:
        """SIGKILL every daemon (idempotent). The folder cannot be restarted afterwards."""
        self._script("stop", str(self.dir), "--kill")
        _forget(self)

    def start(self) -> None:
        """Start again after stop() (same ports, same data)."""
        self._script("start", str(self.dir))
        _remember(self)

    def stop_gateway(self, kill: bool = False) -> None:
        """Stop (kill=True: SIGKILL) radosgw only: the S3 port refuses connections, data stays."""
        self._script("stop-gateway", str(self.dir), *(["--kill"] if kill else []))

    def start_gateway(self) -> None:
        """Start radosgw again on the same port; returns once it answers."""
        self._script("start-gateway", str(self.dir))

    def log_dir(self) -> pathlib.Path:
        return self.dir / "log"

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run radosgw-admin on this cluster, e.g. admin("bucket", "stats", "--bucket", b) or
        admin("gc", "process", "--include-all") (frees deleted objects' RAM at once)."""
        return subprocess.run(["radosgw-admin", "-c", str(self.dir / "ceph.conf"), *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=check, timeout=120)


def _remember(r: Rgw) -> None:
    with _live_lock:
        _live.add(r)


def _forget(r: Rgw) -> None:
    with _live_lock:
        _live.discard(r)


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        left = list(_live)
        _live.clear()
    for r in left:
        try:
            _run_script("stop", str(r.dir), "--kill", timeout=30)
        except Exception:
            pass


def start_rgw(tmpdir, *, access_key: str | None = None, secret_key: str | None = None,
              port: int | None = None, attempts: int = 3) -> Rgw:
    """Make and start a fresh cluster in TMPDIR/s3-local on free ports; return once GET /
    answers. Retries with other ports when one was taken in the meantime."""
    if not have_packages():
        raise RgwError("RADOS Gateway not installed: apt-get install -y " + " ".join(PACKAGES))
    directory = pathlib.Path(tmpdir) / "s3-local"
    last = ""
    for _ in range(attempts):
        if directory.exists() and not any(directory.iterdir()):
            directory.rmdir()
        if directory.exists():
            raise RgwError(f"{directory} already exists")
        used: set[int] = set()
        ports = []
        for fixed in (port, None, None):
            p = fixed or free_port(used)
            used.add(p)
            ports.append(p)
        args = ["start", str(directory), "--port", str(ports[0]), "--mon-port", str(ports[1]),
                "--mon-v1-port", str(ports[2])]
        if access_key or secret_key:
            args += ["--access-key", access_key or "", "--secret-key", secret_key or ""]
        r = _run_script(*args)
        if r.returncode == 0:
            settings = _read_settings(directory / "s3-local.settings")
            rgw = Rgw(directory, ports[0], settings["ACCESS_KEY"], settings["SECRET_KEY"])
            _remember(rgw)
            return rgw
        last = r.stderr + r.stdout
        if "already in use" not in last or port:
            break
    raise RgwError(f"scripts/s3-local start failed:\n{last}")


def _read_settings(path: pathlib.Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip("'")
    return out
