"""kvsfs mounted on kvs-local: fragment downloads in flight (src/fs/cache/fetch.c on util/sflight).

Readers of one fragment share one download; a failed download is not remembered, so a fragment
whose read-ahead failed is downloaded again when opened (docs/SEMANTICS.md, "Reading fragments
fast"). Assertions are on kvs-local's call counters, never on timing.
"""
import datetime as dt
import errno
import os
import threading
import time

import pytest

from kvs_local.testing import gmffl
from kvsfs_testing import xattr

UTC = dt.timezone.utc


def api_count(counters, api):
    c = counters.get(api)
    return c["total"] if c else 0


@pytest.fixture(scope="module")
def folder(kvs):
    """A stream with 20 s of 2-second fragments (10) inside one past hour; returns the hour's
    path relative to a mount, as a tuple."""
    start = time.time() - 5 * 3600
    start -= start % 3600
    start += 600
    kvs.create_stream("cachetest", retention_hours=24)
    kvs.seed_testsrc("cachetest", duration=20, start_ts=start)
    t = dt.datetime.fromtimestamp(start, UTC)
    return ("cachetest", "fragments", t.strftime("%Y-%m-%d"), t.strftime("%H"))


def test_eight_concurrent_readers_of_one_fragment_make_one_call(kvs, folder, mount):
    m = mount(kvs)
    hour = m.path(*folder)
    names = sorted(os.listdir(hour))
    assert len(names) >= 5
    last = os.path.join(hour, names[-1])  # the last of its folder: no read-ahead, no prefetch
    number = xattr(last, "user.kvs.fragment_number")
    kvs.reset_counters()
    start = threading.Barrier(8)
    results, errors = [], []

    def reader():
        try:
            start.wait()
            with open(last, "rb") as f:
                results.append(f.read())
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert api_count(kvs.counters(), "GetMediaForFragmentList") == 1
    want = gmffl(kvs, "cachetest", [number])
    assert len(results) == 8 and all(r == want for r in results)


def test_a_failed_read_ahead_is_downloaded_again_when_opened(kvs, folder, mount):
    m = mount(kvs, readahead=4)
    m.expect_log(r"GetMediaForFragmentList failed|not authorized")
    hour = m.path(*folder)
    names = sorted(os.listdir(hour))
    first, second = (os.path.join(hour, n) for n in names[:2])
    number = xattr(second, "user.kvs.fragment_number")
    kvs.reset_counters()
    kvs.faults({"GetMediaForFragmentList": {"deny_next": 1}})
    try:
        # one call carries the first fragment and its read-ahead (the second among them): denied
        with pytest.raises(OSError) as e:
            open(first, "rb").close()
        assert e.value.errno == errno.EACCES
        assert api_count(kvs.counters(), "GetMediaForFragmentList") == 1
    finally:
        kvs.clear_faults()
    with open(second, "rb") as f:
        data = f.read()
    assert data == gmffl(kvs, "cachetest", [number])
    assert api_count(kvs.counters(), "GetMediaForFragmentList") >= 2
