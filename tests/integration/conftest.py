"""Shared pytest set-up for every integration suite.

- tests/ is on the import path through pytest.ini (`pythonpath = tests`): suites import the support
  packages (kvs_local, s3_local, kvsfs_testing, kvsfs_procs) directly.
- `build_dir`: the meson build folder holding kvsfs and the helper programs (env KVSFS_BUILD_DIR,
  default <repo>/build).
- `shared_dir`: the read-only shared test data (env KVSFS_SHARED, default <repo>/../shared).
- `tool(name)`: path of a program from tests/tools (built into <build>/tests/tools).
- Every test fails when a kvsfs process it started is still running at its end (a daemon that
  outlived its mount); such a process is killed so it cannot spoil the next tests.

The local servers, shared by every suite (docs/TESTING.md, "Shared fixtures"):
- `kvs_server(**options)`: starts a kvs-local server for the test and returns it
  (kvs_local.testing.Server); options are kvs-local's command-line options (no_quotas=True,
  fault=[...], max_streams=2, access_key=...; data_dir= reuses a folder). Stopped at the test's end.
- `kvs_servers.start(request, **options)`: the same for fixtures of any scope: the server is
  stopped when the scope of `request` ends (a module-scoped fixture passes its own request).
- `rgw`: a fresh Ceph RGW (s3_local.Rgw) for the module, killed at its end; `s3`: its boto3 client.
- `export_stack`: for the module, RGW + bucket "exports" + kvs-local with the gateway's keys (a
  mount has one credentials chain) + stream "cam": 12 s of H.264 + AAC from the start of the hour
  two hours ago. An ExportStack(rgw, kvs, bucket, stream, start).
"""
import dataclasses
import os
import pathlib
import signal
import sys
import time

import pytest

import kvsfs_procs
from kvs_local.testing import Server, start_server
from s3_local import Rgw, start_rgw

REPO = pathlib.Path(__file__).resolve().parents[2]

# background daemons are re-parented to pytest, which learns how they ended (kvsfs_procs.reap)
kvsfs_procs.become_subreaper()


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """`from conftest import ...` in a test module names the conftest.py of the module's own
    folder (mount/conftest.py re-exports its helpers for such files), whatever folders were
    collected before: pytest keeps every folder's conftest under the one module name "conftest",
    so the right one is put there while the test module is imported."""
    conf = None
    if isinstance(collector, pytest.Module):
        path = str(collector.path.parent / "conftest.py")
        conf = next((m for m in collector.config.pluginmanager.get_plugins()
                     if getattr(m, "__file__", None) == path), None)
    if conf is None:
        yield
        return
    saved = sys.modules.get("conftest")
    sys.modules["conftest"] = conf
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["conftest"] = saved


@pytest.fixture(autouse=True)
def no_kvsfs_outlives_its_test(tmp_path_factory):
    # this run's daemons: their mount points lie under this session's temporary folder (other
    # pytest sessions on the machine are none of this test's business)
    base = str(tmp_path_factory.getbasetemp())

    def ours():
        return [(p, a) for p, a in kvsfs_procs.kvsfs_processes()
                if any(x.startswith(base + "/") for x in a[1:])]

    before = {pid for pid, _ in ours()}
    yield
    left = [(p, a) for p, a in ours() if p not in before]
    deadline = time.time() + 5
    while left and time.time() < deadline:  # a daemon that is just exiting gets a moment
        time.sleep(0.1)
        left = [(p, a) for p, a in ours() if p not in before]
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
            kvsfs_procs.reap(pid, 10)
        except (ProcessLookupError, TimeoutError):
            pass
    assert not left, "kvsfs processes outlived the test: " + "; ".join(
        f"pid {p}: {' '.join(a)}" for p, a in left)


def _build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KVSFS_BUILD_DIR", REPO / "build")).resolve()


@pytest.fixture(scope="session")
def repo_dir() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def build_dir() -> pathlib.Path:
    d = _build_dir()
    if not (d / "src" / "kvsfs").exists():
        pytest.fail(f"kvsfs is not built in {d} (set KVSFS_BUILD_DIR)")
    return d


@pytest.fixture(scope="session")
def sanitized(build_dir) -> bool:
    """True when kvsfs is built with AddressSanitizer (scripts/test's build-asan): its shadow
    memory and free quarantine make RSS say nothing about the daemon's own memory."""
    return b"__asan_init" in (build_dir / "src" / "kvsfs").read_bytes()


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    d = pathlib.Path(os.environ.get("KVSFS_SHARED", REPO.parent / "shared")).resolve()
    if not d.is_dir():
        pytest.fail(f"shared test data not found at {d} (set KVSFS_SHARED)")
    return d


@pytest.fixture(scope="session")
def tool(build_dir):
    def path(name: str) -> str:
        p = build_dir / "tests" / "tools" / name
        if not p.exists():
            pytest.fail(f"helper program {name} not built in {p.parent}")
        return str(p)
    return path


# ---------------------------------------------------------------- the local servers


class KvsServers:
    """Starts kvs-local servers whose lifetime is the scope of the request that asked for them."""

    def __init__(self, tmp_path_factory):
        self._tmp = tmp_path_factory

    def start(self, request, data_dir=None, **options) -> Server:
        """Starts kvs-local on 127.0.0.1 (a free port) in data_dir (default: a new folder under
        the session's temporary folder) with options as command-line options; returns it once it
        answers. It is stopped when the scope of request ends, even if the test failed."""
        srv = start_server(data_dir or self._tmp.mktemp("kvs"), **options)
        request.addfinalizer(srv.stop)
        return srv


@pytest.fixture(scope="session")
def kvs_servers(tmp_path_factory) -> KvsServers:
    return KvsServers(tmp_path_factory)


@pytest.fixture
def kvs_server(kvs_servers, request):
    def start(data_dir=None, **options) -> Server:
        return kvs_servers.start(request, data_dir, **options)
    return start


@pytest.fixture(scope="module")
def rgw(tmp_path_factory) -> Rgw:
    r = start_rgw(tmp_path_factory.mktemp("rgw"))
    try:
        yield r
    finally:
        r.kill()


@pytest.fixture(scope="module")
def s3(rgw):
    return rgw.s3()


@dataclasses.dataclass
class ExportStack:
    rgw: Rgw
    kvs: Server     # kvs-local with the gateway's keys
    bucket: str     # "exports", empty at the start
    stream: str     # "cam": 12 s (six 2-second fragments) of H.264 + AAC
    start: int      # the stream's first timestamp: the start of the hour two hours ago


@pytest.fixture(scope="module")
def export_stack(rgw, kvs_servers, request) -> ExportStack:
    bucket = rgw.make_bucket("exports")
    kvs = kvs_servers.start(request, access_key=rgw.access_key, secret_key=rgw.secret_key)
    start = (int(time.time()) // 3600 - 2) * 3600
    kvs.seed_testsrc("cam", duration=12, audio=True, start_ts=start)
    return ExportStack(rgw, kvs, bucket, "cam", start)
