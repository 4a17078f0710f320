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

The helpers the suites use live in importable modules (tests/ is on the import path):
kvsfs_testing (Mount, fragment_files, xattr, md5, daemon_env), kvs_local.testing (gmffl,
archived_media, retry_throttled), kvsfs_procs (daemon_pids, reap). They are re-exported here so
that `from conftest import Mount, fragment_files` keeps working; new tests import the modules.
"""
import itertools

import pytest

from kvs_local.testing import archived_media, gmffl, retry_throttled  # noqa: F401 (re-exported)
from kvsfs_procs import daemon_pids, reap  # noqa: F401 (re-exported)
from kvsfs_testing import Mount, daemon_env, fragment_files, md5, xattr  # noqa: F401 (re-exported)


@pytest.fixture(scope="module")
def kvs(kvs_servers, request):
    return kvs_servers.start(request)


@pytest.fixture(scope="module")
def stack(export_stack):
    return export_stack.rgw, export_stack.kvs, export_stack.start


@pytest.fixture
def xmount(export_stack, mount):
    count = itertools.count()

    def make(prefix="kvs", endpoint=None, name=None, start=True, **options):
        o = {"export": f"s3://{export_stack.bucket}/{prefix}",
             "s3_endpoint": endpoint or export_stack.rgw.endpoint, "s3_path_style": True}
        o.update(options)
        return mount(export_stack.kvs, name=name or f"x{next(count)}", start=start, **o)
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
