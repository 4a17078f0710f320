"""Fixtures of the in-process fs suites: the filesystem layer (vfs, export/) runs without FUSE
inside tests/tools/kvsfs-fs (fs_driver.c), which reads one operation per line and answers one
line each ("ok ..." or "err ENAME"); see the top of fs_driver.c for the language.

- `fs_driver(srv, cache=None, **options)`: starts kvsfs-fs against kvs-local `srv` (its keys are
  the credentials, its URL the KVS endpoint); options become command-line flags (max_retry_ms=2000
  -> --max-retry-ms 2000, no_check=True -> --no-check). Returns a Driver. At teardown every
  driver is ended (its open files closed as at exit) and the test fails when one exited non-zero,
  logged a sanitizer report, or logged a warning/error the test did not declare with
  d.expect_log(regex).
"""
import pytest

from kvsfs_testing import Driver, parse_attr, parse_ls  # noqa: F401 (re-exported)


@pytest.fixture
def fs_driver(tool, tmp_path):
    exe = tool("kvsfs-fs")
    drivers = []

    def make(srv, cache=None, **options):
        n = len(drivers)
        d = Driver(exe, srv, cache or tmp_path / f"cache{n}", str(tmp_path / f"fs{n}.log"),
                   options)
        drivers.append(d)
        return d

    yield make
    bad = []
    for d in drivers:
        d.close()
        bad += d.unexpected_log_lines()
    assert not bad, "kvsfs-fs logged unexpected warnings/errors:\n" + "\n".join(bad)
