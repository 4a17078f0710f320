"""clips (src/fs/clips/) end to end against kvs-local with quotas ON, through kvsfs-clips:
ListFragments, planning into GetClip calls of <= 200 fragments, 1 TPS pacing, MP4 join, disk cache.

Checked with ffprobe/ffmpeg: the clip's duration equals the fragments' total within one frame, its
decoded video frame count equals the fragments' frames, audio is present and seeks decode; a
450-fragment clip takes exactly 3 GetClip calls, and with injected GetClip errors/throttling the
clip is still complete and byte-identical; bad names and unsupported codecs give documented errnos
(the tool's exit status is the errno).
"""
import errno
import os
import subprocess
import time
from datetime import datetime, timezone

import pytest

from kvs_local.mediatest import (archived_media, by_type, ffprobe_streams, fragments,
                                 max_gap, media_span, pic_body, top_boxes, ts)

FPS = 25
FRAME_S = 1.0 / FPS
FFMPEG = "/usr/bin/ffmpeg"


def stamp(sec_ms: int) -> str:
    d = datetime.fromtimestamp(sec_ms / 1000, tz=timezone.utc)
    s = d.strftime("%Y%m%dT%H%M%S")
    return s + ("Z" if sec_ms % 1000 == 0 else ".%03dZ" % (sec_ms % 1000))


def clip_name(start_ms: int, end_ms: int) -> str:
    return f"{stamp(start_ms)}-{stamp(end_ms)}.mp4"


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    return kvs_servers.start(request)      # quotas ON


@pytest.fixture(scope="module")
def env(srv, tmp_path_factory):
    d = tmp_path_factory.mktemp("awscfg")
    e = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        e.pop(k, None)
    e.update(AWS_ACCESS_KEY_ID=srv.access_key, AWS_SECRET_ACCESS_KEY=srv.secret_key, AWS_REGION=srv.region,
             AWS_CONFIG_FILE=str(d / "config"), AWS_SHARED_CREDENTIALS_FILE=str(d / "credentials"),
             AWS_EC2_METADATA_DISABLED="true")
    return e


@pytest.fixture(scope="module")
def run(tool, srv, env):
    def f(*args, timeout=300):
        p = subprocess.run([tool("kvsfs-clips"), "--endpoint", srv.url, *args], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout.decode(), p.stderr.decode()
    return f


@pytest.fixture(scope="module")
def five_min(srv):
    """150 fragments of 2 s (h264 + aac), seeded with a real PutMedia."""
    t0 = int(time.time()) - 600
    r = srv.seed_testsrc("clips-5min", duration=300, audio=True, start_ts=float(t0))
    assert len(r.by_type("PERSISTED")) == 150
    return "clips-5min", t0 * 1000


@pytest.fixture(scope="module")
def bulk(srv):
    """450 fragments of 2 s (cloned h264 + aac templates)."""
    srv.seed_bulk("clips-bulk", count=450, audio=True)
    am = archived_media(srv, "clips-bulk")
    frs = fragments(am, "clips-bulk", start=time.time() - 7200, ts_type="PRODUCER_TIMESTAMP")
    assert len(frs) == 450
    return "clips-bulk", frs


def frag_ms(f) -> int:
    return round(ts(f["ProducerTimestamp"]) * 1000)


def check_clip(path, frs):
    """The clip holds exactly the fragments frs: frames, duration, audio, seekable."""
    boxes = top_boxes(str(path))
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat") and "moof" not in boxes
    # the fragments' total: their span (FragmentLengthInMilliseconds runs a few ms long per
    # fragment where audio outlasts video, so only the last one's is used)
    total_s = (frag_ms(frs[-1]) - frag_ms(frs[0]) + frs[-1]["FragmentLengthInMilliseconds"]) / 1000.0
    # frames of each fragment: its length in whole frames (the excess is audio, < 1 frame)
    frames = sum(f["FragmentLengthInMilliseconds"] * FPS // 1000 for f in frs)
    st = by_type(ffprobe_streams(str(path)))
    assert st["video"]["codec_name"] == "h264"
    assert st["audio"]["codec_name"] == "aac"
    assert int(st["video"]["nb_read_frames"]) == frames
    n, _ = media_span(str(path), "v")
    assert n == frames
    # (packet spans are not used: GetClip's own MP4 starts video at an edit-list offset)
    dur = float(st["video"]["duration"])
    assert abs(dur - total_s) <= FRAME_S + 1e-3, (dur, total_s)
    assert max_gap(str(path), "v") < 2 * FRAME_S          # continuous across the parts
    assert abs(float(st["audio"]["duration"]) - total_s) < 0.25
    for t in (0, total_s * 0.31, total_s * 0.5, total_s * 0.77, max(0.0, total_s - 1)):
        p = subprocess.run([FFMPEG, "-v", "error", "-ss", "%.3f" % t, "-i", str(path), "-map", "0:v:0",
                            "-frames:v", "5", "-f", "framemd5", "-"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        frames = [ln for ln in p.stdout.decode().splitlines() if ln and not ln.startswith("#")]
        assert len(frames) == 5, (t, p.stderr.decode())


def test_five_minute_clip(srv, run, five_min, tmp_path):
    stream, t0 = five_min
    am = archived_media(srv, stream)
    frs = [f for f in fragments(am, stream, start=t0 / 1000 - 60, ts_type="PRODUCER_TIMESTAMP")
           if t0 <= frag_ms(f) <= t0 + 300000]
    assert len(frs) == 150
    before = srv.counters().get("GetClip", {}).get("total", 0)
    out = tmp_path / "five.mp4"
    rc, so, se = run("make", stream, clip_name(t0, t0 + 300000), str(out))
    assert rc == 0, se
    assert int(so) == out.stat().st_size
    assert srv.counters()["GetClip"]["total"] - before == 1
    check_clip(out, frs)


def test_long_clip_three_calls_single_flight(srv, run, bulk, tmp_path):
    stream, frs = bulk
    name = clip_name(frag_ms(frs[0]), frag_ms(frs[-1]))
    srv.reset_counters()
    out = tmp_path / "long.mp4"
    # three concurrent callers share one generation: still exactly 3 GetClip calls
    rc, so, se = run("--threads", "3", "--open", "make", stream, name, str(out))
    assert rc == 0, se
    c = srv.counters()["GetClip"]
    assert c["total"] == 3 and c["throttled"] == 0, c
    assert int(so) == out.stat().st_size
    check_clip(out, frs)


def test_long_clip_with_faults_is_identical(srv, run, bulk, tmp_path):
    stream, frs = bulk
    name = clip_name(frag_ms(frs[0]), frag_ms(frs[-1]))
    clean = tmp_path / "clean.mp4"
    rc, _, se = run("make", stream, name, str(clean))
    assert rc == 0, se
    srv.reset_counters()
    specs = [
        {"GetClip": {"error_rate": 0.1, "throttle_rate": 0.1}},
        # the same, plus certain faults: 5xx, throttling, a connection reset in the middle of a body
        {"GetClip": {"error_rate": 0.1, "throttle_rate": 0.1, "error_next": 2, "throttle_next": 2,
                     "reset_next": 1, "reset_after_bytes": 300000}},
    ]
    try:
        for i, spec in enumerate(specs):
            srv.faults(spec)
            faulty = tmp_path / f"faulty{i}.mp4"
            rc, _, se = run("make", stream, name, str(faulty))
            assert rc == 0, se
            assert faulty.read_bytes() == clean.read_bytes()
            srv.clear_faults()
    finally:
        srv.clear_faults()
    c = srv.counters()["GetClip"]
    assert c["errors"] + c["throttled"] >= 4, c


def test_sub_range_and_ms_names(srv, run, bulk, tmp_path):
    """A range inside the stream, with millisecond stamps and a small per-call limit (many parts)."""
    stream, frs = bulk
    lo, hi = frag_ms(frs[10]), frag_ms(frs[40])
    inside = [f for f in frs if lo - 1 <= frag_ms(f) <= hi + 1]
    assert len(inside) == 31
    out = tmp_path / "sub.mp4"
    rc, _, se = run("--max-fragments", "12", "make", stream, clip_name(lo - 1, hi + 1), str(out))
    assert rc == 0, se
    st = by_type(ffprobe_streams(str(out)))
    assert int(st["video"]["nb_read_frames"]) == 31 * 2 * FPS
    assert "audio" in st


def test_server_basis(run, bulk, tmp_path):
    stream, frs = bulk
    sms = [round(ts(f["ServerTimestamp"]) * 1000) for f in frs]
    out = tmp_path / "srv.mp4"
    rc, _, se = run("--server", "--max-fragments", "9", "make", stream, clip_name(sms[5], sms[24]), str(out))
    assert rc == 0, se
    check_clip(out, frs[5:25])


def test_hevc_clip(srv, run, tmp_path):
    t0 = int(time.time()) - 120
    r = srv.seed_testsrc("clips-hevc", duration=12, codec="h265", audio=True, start_ts=float(t0))
    assert len(r.by_type("PERSISTED")) == 6
    out = tmp_path / "hevc.mp4"
    rc, _, se = run("--max-fragments", "4", "make", "clips-hevc", clip_name(t0 * 1000, t0 * 1000 + 12000),
                    str(out))
    assert rc == 0, se
    st = by_type(ffprobe_streams(str(out)))
    assert st["video"]["codec_name"] == "hevc" and st["audio"]["codec_name"] == "aac"
    assert int(st["video"]["nb_read_frames"]) == 12 * FPS


def test_short_part_is_an_error(run, bulk, tmp_path):
    """Asking GetClip for more than it returns (300 > 200 fragments) is caught, never a short clip."""
    stream, frs = bulk
    rc, _, se = run("--max-fragments", "300", "make", stream, clip_name(frag_ms(frs[0]), frag_ms(frs[-1])),
                    str(tmp_path / "x.mp4"))
    assert rc == errno.EIO, se
    assert "cut short" in se or "ms of video" in se
    assert not (tmp_path / "x.mp4").exists()


def test_cached_clip_is_reused_and_small_cache(srv, run, bulk, tmp_path):
    stream, frs = bulk
    name = clip_name(frag_ms(frs[100]), frag_ms(frs[130]))
    cache = tmp_path / "cache"
    rc, so1, se = run("--cache", str(cache), "make", stream, name, str(tmp_path / "a.mp4"))
    assert rc == 0, se
    srv.reset_counters()
    rc, so2, se = run("--cache", str(cache), "--open", "make", stream, name, str(tmp_path / "b.mp4"))
    assert rc == 0, se
    assert so1 == so2 and srv.counters().get("GetClip", {}).get("total", 0) == 0   # served from the cache
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    # a cache smaller than the clip and its parts (5 GetClip calls): made and opened pinned, complete
    rc, so3, se = run("--cache-max", "100000", "--open", "--max-fragments", "7", "make", stream, name,
                      str(tmp_path / "c.mp4"))
    assert rc == 0, se
    check_clip(tmp_path / "c.mp4", frs[100:131])


@pytest.mark.parametrize("name,code", [
    ("20240501T120500Z-20240501T120000Z.mp4", errno.EINVAL),     # END before START
    ("20240501T120000Z-20240502T120001Z.mp4", errno.EFBIG),      # over 24 h
    ("20240501T120000Z-20240501T120500Z.mkv", errno.ENOENT),     # malformed
    ("20240501T1200Z-20240501T120500Z.mp4", errno.ENOENT),       # malformed
])
def test_bad_names(run, five_min, tmp_path, name, code):
    rc, _, se = run("make", five_min[0], name, str(tmp_path / "x.mp4"))
    assert rc == code, se


def test_empty_range_and_missing_stream(run, five_min, tmp_path):
    stream, t0 = five_min
    rc, _, se = run("make", stream, clip_name(t0 - 3600000, t0 - 1800000), str(tmp_path / "x.mp4"))
    assert rc == errno.ENOENT, se
    assert "no fragment" in se
    rc, _, se = run("make", "clips-nosuch", clip_name(t0, t0 + 60000), str(tmp_path / "y.mp4"))
    assert rc == errno.ENOENT, se


def test_unsupported_codec(srv, run, tmp_path):
    t0 = int(time.time()) - 300
    srv.create_stream("clips-fourcc")
    tracks = [{"number": 1, "type": "video", "codec_id": "V_MS/VFW/FOURCC",
               "codec_private": b"\x28" + b"\x00" * 39, "width": 1280, "height": 720}]
    r = srv.put_media("clips-fourcc", pic_body(tracks), timecode_type="RELATIVE", start_ts=float(t0))
    assert len(r.by_type("RECEIVED")) == 2
    time.sleep(1.2)     # listing is eventually consistent
    rc, _, se = run("make", "clips-fourcc", clip_name((t0 - 1) * 1000, (t0 + 10) * 1000), str(tmp_path / "x.mp4"))
    assert rc == errno.EMEDIUMTYPE, se
    assert "UnsupportedStreamMediaType" in se
