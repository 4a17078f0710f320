"""PutMedia on kvs-local: streamed chunked bodies, ACK lines for good and bad fragments, limits.
PutMedia has no boto3 API: it is driven with our signed streaming client; results are checked with boto3."""
import re
import subprocess
import threading
import time

import pytest

from kvs_local import mkv, seed
from kvs_local.seed import PutMediaError
from kvs_local.testing import boto3_client


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    return kvs_servers.start(request, no_quotas=True, idle_ack_seconds=0.5)


CPD, GOPS = seed.sample_h264_gops()
VIDEO = {"number": 1, "type": "video", "codec_id": "V_MPEG4/ISO/AVC", "codec_private": CPD, "width": 1280,
         "height": 720}
AUDIO = {"number": 2, "type": "audio", "codec_id": "A_AAC", "codec_private": b"\x12\x10",
         "sampling_frequency": 44100, "channels": 1}


def gop_frames(i=0, step=40, track=1):
    return [(track, k * step, k == 0, f) for k, f in enumerate(GOPS[i % len(GOPS)])]


def check_types(acks):
    for a in acks:
        assert a["EventType"] in ("BUFFERING", "RECEIVED", "PERSISTED", "ERROR", "IDLE")
        if a["EventType"] == "IDLE":
            continue
        assert isinstance(a["FragmentNumber"], str) and re.fullmatch(r"913438523\d{38}", a["FragmentNumber"])
        if not (a["EventType"] == "ERROR" and a["ErrorId"] == 4006):  # no timecode seen yet
            assert isinstance(a["FragmentTimecode"], int)
        if a["EventType"] == "ERROR":
            assert isinstance(a["ErrorId"], int) and isinstance(a["ErrorCode"], str)


def test_good_fragments_relative(srv, am):
    srv.create_stream("put-good", retention_hours=1)
    start = time.time() - 30
    r = srv.put_media("put-good", seed.producer_stream(4), timecode_type="RELATIVE", start_ts=start)
    check_types(r.acks)
    assert [a["EventType"] for a in r.acks if a["EventType"] != "IDLE"] == ["BUFFERING", "RECEIVED", "PERSISTED"] * 4
    nums = [a["FragmentNumber"] for a in r.by_type("PERSISTED")]
    assert nums == sorted(nums) and len(set(nums)) == 4
    assert [a["FragmentTimecode"] for a in r.by_type("PERSISTED")] == [0, 1800, 3600, 5400]
    frs = am.list_fragments(StreamName="put-good")["Fragments"]
    assert sorted(f["FragmentNumber"] for f in frs) == nums
    by = {f["FragmentNumber"]: f for f in frs}
    for i, n in enumerate(nums):
        assert abs(by[n]["ProducerTimestamp"].timestamp() - (start + 1.8 * i)) < 0.002
        assert by[n]["FragmentLengthInMilliseconds"] == 1800
        assert abs(by[n]["ServerTimestamp"].timestamp() - time.time()) < 10
    # the raw ACK line format: quoted FragmentNumber, numeric timecode
    assert r.by_type("RECEIVED")[0]["FragmentTimecode"] == 0


def test_absolute_timecodes_and_no_persisted_without_retention(srv, am):
    srv.create_stream("put-abs", retention_hours=0)
    t0 = int(time.time() * 1000) - 20000
    r = srv.put_media("put-abs", seed.producer_stream(2, start_tc=t0), timecode_type="ABSOLUTE")
    assert [a["EventType"] for a in r.acks if a["EventType"] != "IDLE"] == ["BUFFERING", "RECEIVED"] * 2
    assert r.by_type("RECEIVED")[0]["FragmentTimecode"] == t0
    frs = am.list_fragments(StreamName="put-abs")["Fragments"]
    assert sorted(round(f["ProducerTimestamp"].timestamp() * 1000) for f in frs) == [t0, t0 + 1800]


def _stream_with(clusters, tracks=(VIDEO,)):
    w = mkv.ProducerMkvWriter(list(tracks))
    return w.header() + b"".join(clusters)


def _errors(r):
    return [(a["ErrorId"], a["ErrorCode"]) for a in r.by_type("ERROR")]


def test_error_4002_too_long(srv):
    srv.create_stream("put-4002")
    W = mkv.ProducerMkvWriter
    body = _stream_with([W.cluster(0, gop_frames(0)), W.cluster(2000, gop_frames(1, step=250)),
                         W.cluster(14000, gop_frames(2))])
    r = srv.put_media("put-4002", body)
    check_types(r.acks)
    assert _errors(r) == [(4002, "MAX_FRAGMENT_DURATION_REACHED")]
    assert r.by_type("ERROR")[0]["FragmentTimecode"] == 2000
    assert len(r.by_type("PERSISTED")) == 2  # the good fragments around it are kept


def test_error_4004_not_after_previous(srv):
    srv.create_stream("put-4004")
    W = mkv.ProducerMkvWriter
    body = _stream_with([W.cluster(10000, gop_frames(0)), W.cluster(10000 + 44 * 40, gop_frames(1)),
                         W.cluster(5000, gop_frames(2)), W.cluster(20000, gop_frames(3))])
    r = srv.put_media("put-4004", body, timecode_type="ABSOLUTE")
    check_types(r.acks)
    assert _errors(r) == [(4004, "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS")] * 2
    assert [a["FragmentTimecode"] for a in r.by_type("ERROR")] == [10000 + 44 * 40, 5000]
    assert [a["FragmentTimecode"] for a in r.by_type("PERSISTED")] == [10000, 20000]


def test_error_4006_invalid_mkv(srv, am):
    srv.create_stream("put-4006")
    r = srv.put_media("put-4006", b"this is not matroska at all" * 10)
    check_types(r.acks)
    assert [a["ErrorId"] for a in r.by_type("ERROR")] == [4006]
    # a broken element inside the second cluster: first fragment kept, then 4006 and the request ends
    W = mkv.ProducerMkvWriter
    good = W.cluster(0, gop_frames(0))
    bad = W.cluster(2000, gop_frames(1))[:40] + b"\x00\x00\x00\x00" * 8
    r = srv.put_media("put-4006", _stream_with([good, bad]))
    check_types(r.acks)
    assert len(r.by_type("PERSISTED")) == 1 and [a["ErrorId"] for a in r.by_type("ERROR")] == [4006]
    assert len(am.list_fragments(StreamName="put-4006")["Fragments"]) == 1


def test_error_4010_unknown_track(srv):
    srv.create_stream("put-4010")
    W = mkv.ProducerMkvWriter
    frames = gop_frames(1) + [(3, 100, False, b"\x00\x00\x00\x01\x09")]
    r = srv.put_media("put-4010", _stream_with([W.cluster(0, gop_frames(0)), W.cluster(1800, frames),
                                               W.cluster(3600, gop_frames(2))]))
    check_types(r.acks)
    assert _errors(r) == [(4010, "TRACK_NUMBER_MISMATCH")]
    assert len(r.by_type("PERSISTED")) == 2


def test_error_4011_track_without_frames(srv):
    srv.create_stream("put-4011")
    W = mkv.ProducerMkvWriter
    audio = [(2, k * 23, True, b"\x21\x00" + b"\x00" * 20) for k in range(70)]
    with_audio = sorted(gop_frames(0) + audio, key=lambda f: f[1])
    with_audio2 = [(t, rel, key, d) for t, rel, key, d in sorted(gop_frames(2) + audio, key=lambda f: f[1])]
    r = srv.put_media("put-4011", _stream_with([W.cluster(0, with_audio), W.cluster(1800, gop_frames(1)),
                                               W.cluster(3600, with_audio2)], tracks=(VIDEO, AUDIO)))
    check_types(r.acks)
    assert _errors(r) == [(4011, "FRAMES_MISSING_FOR_TRACK")]
    assert [a["FragmentTimecode"] for a in r.by_type("PERSISTED")] == [0, 3600]


def test_error_4012_too_many_tracks(srv):
    srv.create_stream("put-4012")
    W = mkv.ProducerMkvWriter
    tracks = [VIDEO] + [dict(AUDIO, number=n) for n in (2, 3, 4)]
    frames = sorted(gop_frames(0) + [(n, 0, True, b"\x21\x00") for n in (2, 3, 4)], key=lambda f: f[1])
    r = srv.put_media("put-4012", _stream_with([W.cluster(0, frames)], tracks=tracks))
    check_types(r.acks)
    assert _errors(r) == [(4012, "MORE_THAN_ALLOWED_TRACKS_FOUND")]


def test_errors_stream_and_headers(srv):
    with pytest.raises(PutMediaError) as e:
        srv.put_media("put-missing", seed.producer_stream(1))
    assert e.value.status == 404 and e.value.type_ == "ResourceNotFoundException"
    srv.create_stream("put-hdr")
    with pytest.raises(PutMediaError) as e:
        srv.put_media("put-hdr", seed.producer_stream(1), timecode_type="SOMETIMES")
    assert e.value.status == 400 and e.value.type_ == "InvalidArgumentException"
    with pytest.raises(PutMediaError) as e:
        seed.put_media(srv.url, "put-hdr", seed.producer_stream(1), srv.access_key, "badsecret")
    assert e.value.status == 403
    # by ARN
    kv = boto3_client(srv, "kinesisvideo")
    arn = kv.describe_stream(StreamName="put-hdr")["StreamInfo"]["StreamARN"]
    r = srv.put_media(arn, seed.producer_stream(1), by_arn=True)
    assert len(r.by_type("RECEIVED")) == 1


def test_connection_limit_and_idle(srv):
    srv.create_stream("put-conn")
    data = seed.producer_stream(2)
    split = data.index(mkv.encode_id(mkv.CLUSTER))
    release = threading.Event()

    def slow():
        yield data[:split]
        release.wait(10)
        yield data[split:]
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", srv.put_media("put-conn", slow())))
    t.start()
    time.sleep(1.5)  # > idle_ack_seconds: IDLE acks flow while the producer is silent
    try:
        with pytest.raises(PutMediaError) as e:
            srv.put_media("put-conn", seed.producer_stream(1))
        assert e.value.status == 400 and e.value.type_ == "ConnectionLimitExceededException"
    finally:
        release.set()
        t.join(20)
    r = out["r"]
    assert r.by_type("IDLE") and all(set(a) == {"EventType"} for a in r.by_type("IDLE"))
    assert len(r.by_type("PERSISTED")) == 2
    # the connection is free again
    assert len(srv.put_media("put-conn", seed.producer_stream(1, start_tc=10000)).by_type("RECEIVED")) == 1


def test_unknown_size_clusters_roundtrip(srv, am, tmp_path):
    """Producer-SDK layout (unknown-size Segment and Clusters, Tags after each Cluster) comes back as
    self-contained MKV documents that ffmpeg decodes."""
    srv.create_stream("put-pic")
    W = mkv.ProducerMkvWriter
    parts = [mkv.ProducerMkvWriter([VIDEO]).header()]
    for i in range(3):
        parts.append(W.cluster(i * 1800, gop_frames(i)))
        parts.append(W.tags([("meta", f"v{i}")]))
    r = srv.put_media("put-pic", b"".join(parts))
    assert len(r.by_type("PERSISTED")) == 3
    nums = [a["FragmentNumber"] for a in r.by_type("PERSISTED")]
    data = am.get_media_for_fragment_list(StreamName="put-pic", Fragments=nums)["Payload"].read()
    docs = [e for e in mkv.walk_documents(data) if e.id == mkv.SEGMENT]
    assert len(docs) == 3
    for i, seg in enumerate(docs):
        ids = [c.id for c in seg.children]
        assert ids == [mkv.INFO, mkv.TRACKS, mkv.TAGS, mkv.CLUSTER, mkv.TAGS]
        assert seg.children[3].size is None  # unknown-size cluster kept as sent
        assert dict(mkv.simple_tags(seg.children[4], data)) == {"meta": f"v{i}"}
    p = tmp_path / "pic.mkv"
    p.write_bytes(data)
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-f", "null", "-"], stderr=subprocess.PIPE)
    assert out.returncode == 0
    assert b"rror" not in out.stderr.replace(b"Found unknown-length element", b"")


def test_silent_producer_is_disconnected(kvs_server):
    s = kvs_server(idle_ack_seconds=0.3, putmedia_timeout_seconds=1.0)
    s.create_stream("quiet")
    data = seed.producer_stream(1)

    def gen():
        yield data
        time.sleep(3)
        yield seed.producer_stream(1)[len(mkv.ProducerMkvWriter([VIDEO]).header()):]
    t0 = time.monotonic()
    try:
        r = s.put_media("quiet", gen(), timeout=10)
        acks = r.acks
    except Exception:
        acks = None
    assert time.monotonic() - t0 < 6
    if acks is not None:
        assert [a["EventType"] for a in acks].count("IDLE") >= 1
        assert len([a for a in acks if a["EventType"] == "PERSISTED"]) <= 1


def test_putmedia_signing_variants(srv):
    """Java-SDK style UNSIGNED-PAYLOAD, and a stale date (> 5 min) refused with 403."""
    import datetime as dt
    srv.create_stream("put-sig")
    r = srv.put_media("put-sig", seed.producer_stream(1), extra_headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    assert len(r.by_type("RECEIVED")) == 1
    with pytest.raises(PutMediaError) as e:
        srv.put_media("put-sig", seed.producer_stream(1, start_tc=5000),
                      sign_time=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=7))
    assert e.value.status == 403 and "Signature expired" in e.value.message


def test_stream_deleted_during_putmedia(srv, am):
    srv.create_stream("put-gone")
    kv = boto3_client(srv, "kinesisvideo")
    arn = kv.describe_stream(StreamName="put-gone")["StreamInfo"]["StreamARN"]
    W = mkv.ProducerMkvWriter
    hdr = W([VIDEO]).header()
    first = W.cluster(0, gop_frames(0))
    gate = threading.Event()

    def gen():
        yield hdr + first
        gate.wait(10)
        yield W.cluster(1800, gop_frames(1)) + W.cluster(3600, gop_frames(2))
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", srv.put_media("put-gone", gen())))
    t.start()
    time.sleep(0.5)
    kv.delete_stream(StreamARN=arn)
    gate.set()
    t.join(20)
    errs = [a for a in out["r"].acks if a["EventType"] == "ERROR"]
    assert errs and errs[0]["ErrorId"] == 4008


def test_known_size_cluster_acked_before_next_cluster(srv, am):
    """A known-size Cluster is a complete fragment as soon as its last byte arrives: RECEIVED/PERSISTED come
    back (and ListFragments shows it) while the producer is still streaming."""
    srv.create_stream("put-ack")
    hdr = mkv.ProducerMkvWriter([VIDEO]).header()

    def known(tc, frames):
        c = mkv.ProducerMkvWriter.cluster(tc, frames)
        body = c[5:]  # strip id (4) + unknown size (1)
        return mkv.element(mkv.CLUSTER, body, 8)
    persisted = threading.Event()
    seen_before_second = {}

    def on_ack(a):
        if a["EventType"] == "PERSISTED":
            persisted.set()

    def gen():
        yield hdr + known(0, gop_frames(0))
        assert persisted.wait(5)
        seen_before_second["n"] = len(am.list_fragments(StreamName="put-ack")["Fragments"])
        yield known(1800, gop_frames(1))
    r = srv.put_media("put-ack", gen(), on_ack=on_ack)
    assert seen_before_second["n"] == 1
    assert len(r.by_type("PERSISTED")) == 2
