"""Listings that follow the service: server timestamps, the open hour, retention, and sizes
that the service reports differently from what kvs-local does."""
import datetime as dt
import os
import time

import pytest

from kvs_local.testing import boto3_client, gmffl, retry_throttled
from kvsfs_testing import fragment_files, xattr

UTC = dt.timezone.utc


def hour_dir(m, stream, ts):
    t = dt.datetime.fromtimestamp(ts, UTC)
    return m.path(stream, "fragments", t.strftime("%Y-%m-%d"), t.strftime("%H"))


def name_of(ms):
    t = dt.datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%Y%m%dT%H%M%S.") + f"{ms % 1000:03d}Z.mkv"


def test_timestamps_server_names_and_dates_fragments_by_server_time(kvs, mount):
    produced = time.time() - 5 * 3600  # producer clock hours behind the service
    kvs.create_stream("by-server", retention_hours=24)
    kvs.seed_testsrc("by-server", duration=4, start_ts=produced)
    m = mount(kvs, timestamps="server")
    files = fragment_files(m.path("by-server", "fragments"))
    assert len(files) == 2
    by_ms = {}
    for f in files:
        server_ms = round(float(xattr(f, "user.kvs.server_timestamp")) * 1000)
        number = xattr(f, "user.kvs.fragment_number")
        by_ms.setdefault(server_ms, []).append((int(number), os.path.basename(f)))
        assert os.path.dirname(f) == hour_dir(m, "by-server", server_ms / 1000)
        assert os.stat(f).st_mtime_ns // 1_000_000 == server_ms
    # fragments received in the same millisecond: the lowest number keeps the plain name, the
    # others carry their number (docs/SEMANTICS.md)
    for ms, group in by_ms.items():
        group.sort()
        assert group[0][1] == name_of(ms)
        for number, name in group[1:]:
            assert name == name_of(ms)[:-4] + f"-{number}.mkv"
    # the producer-time view of the same stream files them five hours earlier
    p = mount(kvs)
    assert os.listdir(hour_dir(p, "by-server", produced))


def test_open_hour_shows_new_fragments_within_meta_ttl(kvs, mount):
    kvs.create_stream("growing", retention_hours=2)
    cam = kvs.seed_live("growing")
    try:
        time.sleep(3)
        m = mount(kvs, meta_ttl=1)
        d = hour_dir(m, "growing", time.time())
        first = set(os.listdir(d)) if os.path.isdir(d) else set()
        time.sleep(5)
        later = set(os.listdir(hour_dir(m, "growing", time.time())))
        assert len(later - first) >= 1, (first, later)
    finally:
        cam.stop()


def test_fragments_leaving_retention_disappear(kvs, mount):
    start = time.time() - 3 * 3600
    kvs.seed_bulk("ageing", count=20, start_ts=start, interval_ms=2000, retention_hours=24)
    m = mount(kvs, meta_ttl=1)
    d = hour_dir(m, "ageing", start)
    names = os.listdir(d)
    assert len(names) == 20
    kv = boto3_client(kvs, "kinesisvideo")
    ver = retry_throttled(kv.describe_stream, StreamName="ageing")["StreamInfo"]["Version"]
    retry_throttled(kv.update_data_retention, StreamName="ageing", CurrentVersion=ver,
                    Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=22)
    time.sleep(2.5)
    assert not os.path.exists(os.path.join(d, names[0]))
    assert not os.path.exists(d)


@pytest.mark.parametrize("skew", [100, -100])
def test_sizes_are_exact_even_when_the_service_counts_differently(kvs_server, mount, skew):
    srv = kvs_server()
    # six 2-second fragments around an hour boundary: two hour folders
    boundary = (int(time.time()) // 3600 - 3) * 3600
    srv.seed_testsrc("skewed", duration=12, start_ts=boundary - 6)
    srv.config(fragment_size_skew=skew)
    m = mount(srv)
    m.expect_log("size predicted")
    first, second = hour_dir(m, "skewed", boundary - 6), hour_dir(m, "skewed", boundary)
    a = sorted(os.listdir(first))
    b = sorted(os.listdir(second))
    assert len(a) == 3 and len(b) == 3
    f0 = os.path.join(first, a[0])
    predicted = os.stat(f0).st_size
    want = gmffl(srv, "skewed", [xattr(f0, "user.kvs.fragment_number")])
    assert predicted == len(want) + skew  # the skew fooled the first prediction
    with open(f0, "rb") as f:
        got = f.read()
    assert got == want  # never short, never padded
    assert os.stat(f0).st_size == len(want)  # the true size, learned
    # the other hour was not downloaded, yet its sizes are now predicted right
    for n in b:
        p = os.path.join(second, n)
        size = os.stat(p).st_size
        assert size == len(gmffl(srv, "skewed", [xattr(p, "user.kvs.fragment_number")]))
    assert "size predicted" in m.log()
