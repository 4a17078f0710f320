"""The KVS tree of the filesystem layer in-process (tests/tools/kvsfs-fs, no FUSE) against
kvs-local: stream folders and their fixed entries, day and hour folders of the retention window,
fragment sizes equal to the bytes read and those bytes equal to boto3's GetMediaForFragmentList,
extended attributes, the errnos of bad names, EROFS for every write, and kvs-local faults giving
the documented errnos (docs/ERRORS.md, docs/SEMANTICS.md), never wrong bytes.

Run: KVSFS_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest tests/integration/fs/test_fs_tree.py -q
"""
import datetime as dt
import hashlib
import random
import time

import pytest
from kvs_local.testing import boto3_client, get_media_for_fragment_list, retry_throttled

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def kvs(kvs_servers, request):
    return kvs_servers.start(request)  # quotas on, as the service has them


@pytest.fixture(scope="module")
def seeded(kvs):
    """Two streams with six 2-second fragments in one hour folder two hours ago (H.264; H.264 +
    AAC), and one with no data and a 30-hour retention."""
    start = time.time() - 2 * 3600
    start -= start % 60
    kvs.create_stream("cam-video", retention_hours=48)
    kvs.seed_testsrc("cam-video", duration=12, start_ts=start)
    kvs.create_stream("cam-av", retention_hours=48)
    kvs.seed_testsrc("cam-av", duration=12, audio=True, start_ts=start)
    kvs.create_stream("other-1", retention_hours=30)
    return start


def hour_of(stream, ts):
    t = dt.datetime.fromtimestamp(ts, UTC)
    return f"{stream}/fragments/{t:%Y-%m-%d}/{t:%H}"


def gmffl(srv, stream, number):
    return get_media_for_fragment_list(srv, stream, [number])


def sha(b):
    return hashlib.sha256(b).hexdigest()


def calls(srv, api):
    return srv.counters().get(api, {}).get("total", 0)


def test_streams_and_their_fixed_entries(kvs, seeded, fs_driver):
    d = fs_driver(kvs)
    root = d.ls("/")
    assert {"cam-video", "cam-av", "other-1"} <= set(root)
    assert all(t == "d" for t, _ in root.values())
    entries = d.ls("cam-av")
    assert {k: t for k, (t, _) in entries.items()} == {
        "fragments": "d", "clips": "d", "images": "d", "ingest": "d", "live.m3u8": "f", "live.mpd": "f"}
    st = d.stat("cam-av")
    assert st["type"] == "d" and st["mode"] == 0o555 and st["size"] == 0
    assert d.ls("cam-av/clips") == {}
    # the allow-list and the prefix filter
    d2 = fs_driver(kvs, streams="cam-av:other-1")
    assert set(d2.ls("/")) == {"cam-av", "other-1"}
    assert d2.errno("stat cam-video") == "ENOENT"
    d3 = fs_driver(kvs, stream_prefix="cam-")
    assert set(d3.ls("/")) == {"cam-av", "cam-video"}


def test_day_and_hour_folders_cover_the_retention_window(kvs, seeded, fs_driver):
    d = fs_driver(kvs)
    now = dt.datetime.now(UTC)
    start = now - dt.timedelta(hours=30)
    days = d.ls("other-1/fragments")
    want, day = [], start.date()
    while day <= now.date():
        want.append(day.isoformat())
        day += dt.timedelta(days=1)
    assert sorted(days) == want and all(t == "d" for t, _ in days.values())
    first = sorted(d.ls(f"other-1/fragments/{want[0]}"))
    assert first[0] == f"{start:%H}" and first[-1] == "23"
    last = sorted(d.ls(f"other-1/fragments/{want[-1]}"))
    assert last[0] == "00" and last[-1] == f"{now:%H}"
    # a stream without data: its hours are there and empty
    assert d.ls(f"other-1/fragments/{want[-1]}/{last[-1]}") == {}
    old = (start - dt.timedelta(days=2)).date().isoformat()
    assert d.errno(f"stat other-1/fragments/{old}") == "ENOENT"
    if first[0] != "00":
        assert d.errno(f"stat other-1/fragments/{want[0]}/00") == "ENOENT"


@pytest.mark.parametrize("stream", ["cam-video", "cam-av"])
def test_fragment_sizes_and_bytes_equal_get_media_for_fragment_list(kvs, seeded, fs_driver,
                                                                    stream):
    d = fs_driver(kvs)
    hour = hour_of(stream, seeded)
    listed = d.ls(hour, plus=True)
    assert len(listed) == 6
    rng = random.Random(stream)
    for name, (kind, size) in sorted(listed.items()):
        p = f"{hour}/{name}"
        before = d.stat(p)["size"]
        number = d.ok(f"getxattr {p} user.kvs.fragment_number").split()[1]
        want = gmffl(kvs, stream, number)
        assert kind == "f" and size == before == len(want), name
        assert d.cat(p) == (len(want), sha(want)), name
        assert d.stat(p)["size"] == len(want)
        # reads at any offset are the same bytes, and end at the size
        d.ok(f"open h {p} r")
        for _ in range(4):
            off, n = rng.randrange(len(want)), rng.randint(1, 70000)
            got = d.ok(f"read h {off} {n}").split()
            chunk = want[off:off + n]
            assert got == [str(len(chunk)), sha(chunk)], (name, off, n)
        assert d.ok(f"read h {len(want)} 100").split()[0] == "0"
        d.ok("close h")
    # everything is in the disk cache now: reading it all again makes no download
    before = calls(kvs, "GetMediaForFragmentList")
    for name in listed:
        d.cat(f"{hour}/{name}")
    assert calls(kvs, "GetMediaForFragmentList") == before


def test_extended_attributes(kvs, seeded, fs_driver):
    d = fs_driver(kvs)
    hour = hour_of("cam-video", seeded)
    name = sorted(d.ls(hour))[0]
    f = f"{hour}/{name}"
    names = d.ok(f"listxattr {f}").split()
    assert names == ["user.kvs.fragment_number", "user.kvs.producer_timestamp",
                     "user.kvs.server_timestamp", "user.kvs.duration_ms", "user.kvs.kvs_size",
                     "user.kvs.stream"]
    ts = float(d.ok(f"getxattr {f} user.kvs.producer_timestamp").split()[1])
    t = dt.datetime.fromtimestamp(ts, UTC)
    assert name == f"{t:%Y%m%dT%H%M%S}.{round(ts * 1000) % 1000:03d}Z.mkv"
    assert d.stat(f)["mtime"] == round(ts * 1000)
    assert int(d.ok(f"getxattr {f} user.kvs.duration_ms").split()[1]) > 0
    assert d.ok(f"getxattr {f} user.kvs.stream").split()[1] == "cam-video"
    for folder in ("cam-video", "cam-video/fragments", hour, "cam-video/clips"):
        assert d.ok(f"listxattr {folder}").split() == ["user.kvs.stream"]
    assert d.ok("listxattr /") == ""
    assert d.errno(f"getxattr {f} user.other") == "ENODATA"
    assert d.errno("getxattr / user.kvs.stream") == "ENODATA"
    assert d.errno(f"setxattr {f}") == "EROFS"


def test_bad_names_and_the_read_only_tree(kvs, seeded, fs_driver):
    d = fs_driver(kvs)
    d.expect_log(r"clip name 'not-a-clip.mp4' refused")  # bad input: one line
    hour = hour_of("cam-video", seeded)
    f = f"{hour}/{sorted(d.ls(hour))[0]}"
    fr = "cam-video/fragments"
    day = sorted(d.ls(fr))[-1]
    bad = [f"{fr}/{x}" for x in ("2024-13-01", "2024-02-30", "20240501", "x", ".hidden")]
    bad += [f"{fr}/{day}/{x}" for x in ("24", "7", "aa")]
    bad += [f"{hour}/{x}" for x in ("20240501T120000.000Z.mp4", "20240501T120000Z.mkv", "nope.mkv",
                                    f.rsplit("/", 1)[1][:-4] + "-123.mkv")]
    bad += ["no-such-stream", "cam-video/nothing", "cam-video/clips/not-a-clip.mp4"]
    for p in bad:
        assert d.errno(f"stat {p}") == "ENOENT", p
    assert d.errno(f"stat {hour}/{'x' * 256}") == "ENAMETOOLONG"
    assert d.errno(f"ls {f}") == "ENOTDIR"
    assert d.errno(f"stat {f}/below") == "ENOTDIR"
    assert d.errno(f"cat {hour}") == "EISDIR"
    # every write is EROFS, wherever it is in the tree
    for line in (f"open h {f} w", f"open h {f} rw", f"open h {f} rt", f"create h {f}",
                 f"create h {hour}/new.mkv", "create h cam-video/new", "create h new",
                 f"unlink {f}", f"rename {f} {hour}/other.mkv", f"mkdir {hour}/x", "mkdir x",
                 f"rmdir {hour}", f"truncate {f} 0", f"chmod {f} 644", f"utimens {f} 0",
                 f"symlink {hour}/link", f"setxattr {hour}", "rmdir cam-video"):
        assert d.errno(line) == "EROFS", line
    assert d.errno(f"mkdir {hour}") == "EEXIST"  # the kernel's answer for an existing name
    assert d.errno(f"unlink {hour}") == "EISDIR"
    assert d.cat(f)[0] == d.stat(f)["size"]     # nothing changed


def test_inode_numbers_follow_the_kernels_lookup_counts(kvs, seeded, fs_driver):
    """kvsfs-fs forgets every lookup once nothing uses its entry, as the kernel does: a name
    looked up again then gets a new node, while an open file keeps its node and its folders'."""
    d = fs_driver(kvs)
    hour = hour_of("cam-video", seeded)
    f = f"{hour}/{sorted(d.ls(hour, plus=True))[0]}"
    first = d.stat(f)["ino"]
    again = d.stat(f)["ino"]
    assert again != first
    d.ok(f"open h {f} r")
    held, folder = d.stat(f)["ino"], d.stat(hour)["ino"]
    assert d.stat(f)["ino"] == held and d.stat(hour)["ino"] == folder
    assert d.ok(f"lookup {f}").split()[0] == f"ino={held}"
    d.ok("close h")
    assert d.stat(f)["ino"] not in (first, again, held)
    assert d.stat(hour)["ino"] != folder


LISTING_FAULTS = [
    ({"error_rate": 1.0}, "EIO"),                                   # 500 InternalFailure
    ({"error_rate": 1.0, "error_status": 503}, "EIO"),              # ServiceUnavailable
    ({"error_rate": 1.0, "error_status": 504, "error_type": ""}, "ETIMEDOUT"),
    ({"throttle_rate": 1.0}, "EAGAIN"),                             # ClientLimitExceeded
    ({"deny_rate": 1.0}, "EACCES"),                                 # NotAuthorizedException
    ({"error_rate": 1.0, "error_status": 400, "error_type": "InvalidArgumentException"},
     "EINVAL"),
    ({"error_rate": 1.0, "error_status": 404}, "EIO"),  # the stream exists: never ENOENT
    ({"error_rate": 1.0, "error_status": 404, "error_type": ""}, "EIO"),
]


@pytest.mark.parametrize("spec,errno", LISTING_FAULTS, ids=[e + str(i) for i, (_, e) in
                                                            enumerate(LISTING_FAULTS)])
def test_hour_listing_failures_give_the_documented_errno(kvs, seeded, fs_driver, spec, errno):
    d = fs_driver(kvs, max_retry_ms=1500)
    d.expect_log(r"listFragments: giving up|listing fragments failed|ListFragments")
    hour = hour_of("cam-av", seeded)
    name = f"{dt.datetime.fromtimestamp(seeded, UTC):%Y%m%dT%H%M%S}.000Z.mkv"
    describes = calls(kvs, "DescribeStream")
    kvs.faults({"ListFragments": spec})
    try:
        assert d.errno(f"ls {hour}") == errno
        assert d.errno(f"stat {hour}/{name}") == errno
    finally:
        kvs.clear_faults()
    if spec.get("error_status") == 404:
        assert calls(kvs, "DescribeStream") > describes  # asked whether the stream is gone
    # the failure was not cached: the folder lists as soon as ListFragments answers
    assert len(d.ls(hour)) == 6
    assert d.stat(f"{hour}/{name}")["type"] == "f"


DOWNLOAD_FAULTS = [
    ({"error_rate": 1.0}, "EIO"),
    ({"throttle_rate": 1.0}, "EAGAIN"),
    ({"deny_rate": 1.0}, "EACCES"),
    ({"reset_rate": 1.0}, "EIO"),                  # every transfer breaks half-way
    ({"error_rate": 1.0, "error_status": 404}, "ENOENT"),
]


@pytest.mark.parametrize("spec,errno", DOWNLOAD_FAULTS, ids=[e + str(i) for i, (_, e) in
                                                             enumerate(DOWNLOAD_FAULTS)])
def test_download_failures_give_the_documented_errno_and_cache_nothing(kvs, seeded, fs_driver,
                                                                       spec, errno):
    d = fs_driver(kvs, max_retry_ms=1500)
    d.expect_log(r"getMediaForFragmentList: giving up|fetch|GetMediaForFragmentList|fragment")
    hour = hour_of("cam-video", seeded)
    names = sorted(d.ls(hour))
    kvs.faults({"GetMediaForFragmentList": spec})
    try:
        # the quota may be spent by the calls just before (kvs-local's 5 per second per
        # stream): then the first answer is EAGAIN, never another errno
        assert d.errno(f"cat {hour}/{names[0]}") in (errno, "EAGAIN")
        # the retries of the first call may have used up the stream's quota meanwhile
        assert d.errno(f"open h {hour}/{names[1]} r") in (errno, "EAGAIN")
    finally:
        kvs.clear_faults()
    for name in names[:2]:
        number = d.ok(f"getxattr {hour}/{name} user.kvs.fragment_number").split()[1]
        want = gmffl(kvs, "cam-video", number)
        # the faulty calls' retries and gmffl share the stream's quota (5 a second): a read
        # that meets it spent gets EAGAIN; once the quota refills the bytes are exact
        for _ in range(10):
            r = d.op(f"cat {hour}/{name}")
            if r != "err EAGAIN":
                break
            time.sleep(0.5)
        assert r == f"ok {len(want)} {sha(want)}", r


def test_random_faults_never_give_wrong_bytes(kvs, seeded, fs_driver):
    """Faults on every call of the read path: each read is either the exact bytes or a
    documented errno; with the faults gone, everything reads exactly."""
    want = {}
    probe = fs_driver(kvs)
    for stream in ("cam-video", "cam-av"):
        hour = hour_of(stream, seeded)
        for name in probe.ls(hour):
            number = probe.ok(f"getxattr {hour}/{name} user.kvs.fragment_number").split()[1]
            want[f"{hour}/{name}"] = gmffl(kvs, stream, number)
    d = fs_driver(kvs, max_retry_ms=4000, readahead=2)
    d.expect_log(r".")  # retried and failed calls are logged
    kvs.faults({"GetMediaForFragmentList": {"error_rate": 0.2, "throttle_rate": 0.2,
                                            "reset_rate": 0.3, "slow_rate": 0.3},
                "ListFragments": {"error_rate": 0.2, "throttle_rate": 0.2},
                "GetDataEndpoint": {"error_rate": 0.2, "throttle_rate": 0.2}})
    failed = 0
    try:
        for p, data in sorted(want.items()):
            r = d.op(f"cat {p}")
            if r.startswith("err "):
                assert r[4:] in ("EIO", "EAGAIN", "ETIMEDOUT"), (p, r)
                failed += 1
            else:
                assert r == f"ok {len(data)} {sha(data)}", p
    finally:
        kvs.clear_faults()
    assert failed < len(want)
    for p, data in sorted(want.items()):
        assert d.cat(p) == (len(data), sha(data)), p


def test_a_failed_stream_listing_keeps_the_previous_one(kvs, seeded, fs_driver):
    d = fs_driver(kvs, meta_ttl=1, max_retry_ms=1000)
    d.expect_log(r"listStreams: giving up|ListStreams|listing streams")
    before = set(d.ls("/"))
    assert {"cam-video", "cam-av"} <= before
    calls_before = calls(kvs, "ListStreams")
    kvs.faults({"ListStreams": {"error_rate": 1.0}})
    try:
        time.sleep(1.2)  # the root listing is older than meta_ttl: the next one asks again
        assert set(d.ls("/")) == before
        assert d.stat("cam-video")["type"] == "d"
    finally:
        kvs.clear_faults()
    assert calls(kvs, "ListStreams") > calls_before


def test_a_fragment_gone_since_its_listing_is_enoent(kvs, fs_driver):
    """Fragments listed, then dropped by a shorter retention: GetMediaForFragmentList answers
    with KVS's in-band error (4000, not found), which is ENOENT (SEMANTICS.md)."""
    start = time.time() - 3 * 3600
    start -= start % 60
    kvs.seed_bulk("shrinking", count=30, start_ts=start, interval_ms=2000, retention_hours=24)
    d = fs_driver(kvs, meta_ttl=600)
    d.expect_log(r"fragment|fetch")
    hour = hour_of("shrinking", start)
    last = sorted(d.ls(hour))[-1]            # a cloned fragment (the templates come first)
    kv = boto3_client(kvs, "kinesisvideo")
    version = retry_throttled(kv.describe_stream, StreamName="shrinking")["StreamInfo"]["Version"]
    retry_throttled(kv.update_data_retention, StreamName="shrinking", CurrentVersion=version,
              Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=22)
    assert d.errno(f"cat {hour}/{last}") == "ENOENT"
