"""Shared pytest set-up for every integration suite.

- tests/ is on the import path through pytest.ini (`pythonpath = tests`): suites import the support
  packages (kvs_local, s3_local, kvsfs_testing, kvsfs_procs) directly.
- `build_dir`: the meson build folder holding kvsfs and the helper programs (env KVSFS_BUILD_DIR,
  default <repo>/build).
- `shared_dir`: the read-only shared test data (env KVSFS_SHARED, default <repo>/../shared).
- `tool(name)`: path of a program from tests/tools (built into <build>/tests/tools).
- Every test fails when a kvsfs process it started is still running at its end (a daemon that
  outlived its mount); such a process is killed so it cannot spoil the next tests.
"""
import os
import pathlib
import signal
import time

import pytest

import kvsfs_procs

REPO = pathlib.Path(__file__).resolve().parents[2]

# background daemons are re-parented to pytest, which learns how they ended (kvsfs_procs.reap)
kvsfs_procs.become_subreaper()


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
