"""Shared pytest set-up for every integration suite.

- Puts tests/ on sys.path so suites can `import kvs_local` (the local KVS server package).
- `build_dir`: the meson build folder holding kvsfs and the helper programs (env KVSFS_BUILD_DIR,
  default <repo>/build).
- `shared_dir`: the read-only shared test data (env KVSFS_SHARED, default <repo>/../shared).
- `tool(name)`: path of a program from tests/tools (built into <build>/tests/tools).
"""
import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


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
