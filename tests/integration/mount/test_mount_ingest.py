"""STREAM/ingest/: recordings copied in are sent with PutMedia (docs/INGEST.md).

Judges independent of kvsfs: boto3's ListFragments and GetMediaForFragmentList, ffmpeg's framemd5
of the packets (stream copy: the encoded frames themselves), mkvinfo for the cluster layout, and
kvs-local's counters for "nothing sent".
"""
import datetime as dt
import errno
import os
import shutil
import subprocess
import time

import pytest

from conftest import archived_media, fragment_files, gmffl, retry_throttled

UTC = dt.timezone.utc


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=600)


def make_mkv(path, seconds, gop_frames=50, cluster_ms=10000, date=None):
    """H.264 (25 fps, fixed GOP of gop_frames) + AAC in Matroska. ffmpeg's matroska muxer starts
    a Cluster at every video keyframe (once the cluster holds 4 KiB) or when -cluster_time_limit /
    -cluster_size_limit are reached: with limits above the GOP, clusters start at keyframes; with
    a time limit below the GOP, clusters start mid-GOP."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}",
           "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-bf", "0",
           "-g", str(gop_frames), "-keyint_min", str(gop_frames), "-sc_threshold", "0",
           "-c:a", "aac", "-b:a", "64k",
           "-cluster_time_limit", str(cluster_ms), "-cluster_size_limit", "50000000",
           *(["-metadata", f"creation_time={date}"] if date else []),
           "-f", "matroska", str(path))
    return str(path)


def packet_hashes(path):
    """{stream index: [(size, md5), ...]} of the encoded packets (ffmpeg -c copy -f framemd5)."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
                          "-map", "0", "-c", "copy", "-f", "framemd5", "-"],
                         check=True, capture_output=True, timeout=300).stdout.decode()
    res = {}
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        f = [x.strip() for x in line.split(",")]
        res.setdefault(int(f[0]), []).append((int(f[4]), f[5]))
    return res


def clusters(path):
    out = subprocess.run(["mkvinfo", "-v", str(path)], check=True, capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.rstrip() == "|+ Cluster")


def list_fragments(srv, stream, start, end):
    am = archived_media(srv, stream)
    frags, token = [], None
    while True:
        kw = {"NextToken": token} if token else {
            "FragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                 "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}}
        r = retry_throttled(am.list_fragments, StreamName=stream, **kw)
        frags += r["Fragments"]
        token = r.get("NextToken")
        if not token:
            return sorted(frags, key=lambda f: f["ProducerTimestamp"])


def stamp(ts):
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%S.000Z")


def hour_dir(m, stream, ts):
    t = dt.datetime.fromtimestamp(ts, UTC)
    return m.path(stream, "fragments", t.strftime("%Y-%m-%d"), t.strftime("%H"))


def past_hour_start(hours_back):
    t = time.time() - hours_back * 3600
    return t - t % 3600


def put_media_total(srv):
    c = srv.counters().get("PutMedia")
    return c["total"] if c else 0


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    return make_mkv(d / "rec.mkv", 120)


def test_two_minute_h264_aac_mkv_comes_back_with_the_same_frames(kvs, mount, rec, tmp_path):
    kvs.create_stream("cam", retention_hours=24)
    start = past_hour_start(3) + 600
    n = clusters(rec)
    assert n >= 55  # one cluster per 2-second GOP
    m = mount(kvs)
    assert os.listdir(m.path("cam", "ingest")) == []
    dst = m.path("cam", "ingest", stamp(start) + ".mkv")
    shutil.copyfile(rec, dst)  # close() returned 0: every fragment PERSISTED
    assert os.listdir(m.path("cam", "ingest")) == []

    frags = list_fragments(kvs, "cam", dt.datetime.fromtimestamp(start - 1, UTC),
                           dt.datetime.fromtimestamp(start + 130, UTC))
    assert len(frags) == n
    assert abs(frags[0]["ProducerTimestamp"].timestamp() - start) < 0.1

    files = fragment_files(hour_dir(m, "cam", start))
    assert len(files) == n
    got = {}
    for f in files:
        for idx, hs in packet_hashes(f).items():
            got.setdefault(idx, []).extend(hs)
    assert got == packet_hashes(rec)
    # the fragments KVS stores are the same, through boto3
    body = gmffl(kvs, "cam", [f["FragmentNumber"] for f in frags[:3]])
    assert body.count(b"\x1f\x43\xb6\x75") >= 3


def test_fragment_copied_between_streams_keeps_its_producer_timestamp(kvs, mount, tmp_path):
    start = past_hour_start(4) + 1200
    kvs.create_stream("src", retention_hours=24)
    kvs.create_stream("dst", retention_hours=24)
    kvs.seed_testsrc("src", duration=6, audio=True, start_ts=start)
    m = mount(kvs)
    m.expect_log(r"KVS refused the fragment at timecode \d+: 4004 FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS")
    srcf = fragment_files(hour_dir(m, "src", start))
    assert len(srcf) == 3
    frag = srcf[1]
    kvs.reset_counters()
    shutil.copyfile(frag, m.path("dst", "ingest", "x.mkv"))
    assert put_media_total(kvs) == 1

    want = list_fragments(kvs, "src", dt.datetime.fromtimestamp(start - 1, UTC),
                          dt.datetime.fromtimestamp(start + 10, UTC))[1]
    got = list_fragments(kvs, "dst", dt.datetime.fromtimestamp(start - 1, UTC),
                         dt.datetime.fromtimestamp(start + 10, UTC))
    assert len(got) == 1
    assert got[0]["ProducerTimestamp"] == want["ProducerTimestamp"]
    out = fragment_files(hour_dir(m, "dst", start))
    assert [os.path.basename(p) for p in out] == [os.path.basename(frag)]
    assert packet_hashes(out[0]) == packet_hashes(frag)

    # the same fragment again: KVS answers ERROR 4004 (timecode not after the previous one)
    with pytest.raises(OSError) as e:
        with open(m.path("dst", "ingest", "again.mkv"), "wb") as f:
            f.write(open(frag, "rb").read())
    assert e.value.errno == errno.EINVAL
    assert len(list_fragments(kvs, "dst", dt.datetime.fromtimestamp(start - 1, UTC),
                              dt.datetime.fromtimestamp(start + 10, UTC))) == 1

    # the next fragment under the same name as the first copy: a new file, sent too
    shutil.copyfile(srcf[2], m.path("dst", "ingest", "x.mkv"))
    got = list_fragments(kvs, "dst", dt.datetime.fromtimestamp(start - 1, UTC),
                         dt.datetime.fromtimestamp(start + 10, UTC))
    assert [os.path.basename(p) for p in fragment_files(hour_dir(m, "dst", start))] == \
        [os.path.basename(p) for p in srcf[1:]]
    assert len(got) == 2


def test_relative_file_starts_at_its_name_stamp_else_its_dateutc(kvs, mount, tmp_path):
    kvs.create_stream("dated", retention_hours=24)
    t_name = past_hour_start(6) + 300
    t_date = past_hour_start(5) + 900
    iso = dt.datetime.fromtimestamp(t_date, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    p = make_mkv(tmp_path / "d.mkv", 4, date=iso)
    m = mount(kvs)
    shutil.copyfile(p, m.path("dated", "ingest", stamp(t_name) + ".mkv"))  # the name wins
    shutil.copyfile(p, m.path("dated", "ingest", "holiday.mkv"))           # then DateUTC
    got = list_fragments(kvs, "dated", dt.datetime.fromtimestamp(t_name - 60, UTC),
                         dt.datetime.fromtimestamp(t_date + 60, UTC))
    starts = sorted({round(f["ProducerTimestamp"].timestamp(), 3) for f in got})
    assert len(got) == 4
    assert starts[0] == pytest.approx(t_name, abs=0.001)
    assert starts[2] == pytest.approx(t_date, abs=0.001)


def test_stream_without_retention_takes_received_fragments(kvs, mount, rec, tmp_path):
    kvs.create_stream("noarchive", retention_hours=0)
    small = make_mkv(tmp_path / "small.mkv", 6)
    m = mount(kvs)
    kvs.reset_counters()
    shutil.copyfile(small, m.path("noarchive", "ingest", "small.mkv"))  # RECEIVED, never PERSISTED
    assert put_media_total(kvs) == 1
    assert [s["fragments"] for s in kvs.admin_get("streams")["streams"]
            if s["name"] == "noarchive"] == [clusters(small)]


def test_fragment_longer_than_ten_seconds_gives_efbig(kvs, mount, tmp_path):
    kvs.create_stream("long", retention_hours=24)
    p = make_mkv(tmp_path / "long.mkv", 14, gop_frames=300, cluster_ms=30000)
    assert clusters(p) == 2  # keyframes at 0 s and 12 s: the first cluster lasts 12 s
    m = mount(kvs)
    m.expect_log(r"long/ingest/long.mkv: KVS refused the fragment at timecode \d+: 4002 "
                 r"MAX_FRAGMENT_DURATION_REACHED")
    with pytest.raises(OSError) as e:
        shutil.copyfile(p, m.path("long", "ingest", "long.mkv"))
    assert e.value.errno == errno.EFBIG


def test_not_matroska_is_refused_at_the_first_write_and_nothing_is_sent(kvs, mount, tmp_path):
    kvs.create_stream("junk", retention_hours=24)
    m = mount(kvs)
    m.expect_log(r"junk/ingest/notes.txt: not a Matroska file \(no EBML header\): refused, nothing sent")
    kvs.reset_counters()
    fd = os.open(m.path("junk", "ingest", "notes.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as e:
            os.write(fd, b"hello, this is not video\n" * 100)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            os.write(fd, b"more")
        assert e.value.errno == errno.EINVAL
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
        assert e.value.errno == errno.EINVAL
    assert put_media_total(kvs) == 0
    assert [s["fragments"] for s in kvs.admin_get("streams")["streams"] if s["name"] == "junk"] == [0]


def test_clusters_not_at_keyframes_are_refused_and_nothing_is_sent(kvs, mount, tmp_path):
    kvs.create_stream("gop", retention_hours=24)
    p = make_mkv(tmp_path / "gop.mkv", 8, gop_frames=100, cluster_ms=1000)
    assert clusters(p) > 2
    m = mount(kvs)
    m.expect_log(r"gop/ingest/gop.mkv: refused, nothing sent: a Cluster does not start at a keyframe")
    kvs.reset_counters()
    with pytest.raises(OSError) as e:
        shutil.copyfile(p, m.path("gop", "ingest", "gop.mkv"))
    assert e.value.errno == errno.EINVAL
    assert put_media_total(kvs) == 0
    assert [s["fragments"] for s in kvs.admin_get("streams")["streams"] if s["name"] == "gop"] == [0]


def test_ingest_is_write_only_and_lists_empty(kvs, mount):
    kvs.create_stream("wo", retention_hours=24)
    m = mount(kvs)
    m.expect_log(r"live: wo: stream is not live")  # listing the stream folder sizes live.m3u8
    d = m.path("wo", "ingest")
    assert "ingest" in os.listdir(m.path("wo"))
    assert os.listdir(d) == []
    with pytest.raises(FileNotFoundError):
        open(os.path.join(d, "x.mkv"), "rb")
    with pytest.raises(OSError) as e:
        os.mkdir(os.path.join(d, "sub"))
    assert e.value.errno == errno.EROFS


def test_documented_ingest_limits_never_fail_a_copy(kvs_server, mount, tmp_path):
    """kvs-local enforcing PutMedia's 12.5 MB/s and 5 fragments/s per stream (back-pressure):
    its own producer, which does not pace, gets paced; a copy into ingest/ still succeeds whole."""
    srv = kvs_server(putmedia_rate_limits=True)
    srv.create_stream("fast", retention_hours=24)
    srv.create_stream("cam", retention_hours=24)
    srv.seed_testsrc("fast", duration=20, start_ts=past_hour_start(2))  # 10 fragments at once
    assert srv.counters()["PutMedia"]["paced"] >= 1
    p = make_mkv(tmp_path / "twenty.mkv", 20)
    n = clusters(p)
    srv.reset_counters()
    m = mount(srv)
    shutil.copyfile(p, m.path("cam", "ingest", stamp(past_hour_start(2)) + ".mkv"))
    c = srv.counters()["PutMedia"]
    assert c["total"] == 1 and c["errors"] == 0 and c["throttled"] == 0
    assert [s["fragments"] for s in srv.admin_get("streams")["streams"] if s["name"] == "cam"] == [n]
