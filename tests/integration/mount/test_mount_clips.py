"""clips/START-END.mp4 through the mount: one MP4 per range, stitched past GetClip's limits."""
import datetime as dt
import errno
import filecmp
import os
import subprocess
import threading
import time

import pytest

from kvsfs_testing import clip_stamp as stamp, ffprobe_json as probe


UTC = dt.timezone.utc
FPS = 25  # kvs-local's testsrc: 25 fps, 2-second fragments


@pytest.fixture(scope="module")
def clipsrv(kvs_servers, request):
    """A stream of 460 two-second H.264+AAC fragments (bulk), quotas on."""
    srv = kvs_servers.start(request)
    start = (int(time.time()) // 3600 - 3) * 3600
    srv.seed_bulk("clipcam", count=460, start_ts=start, interval_ms=2000, audio=True)
    srv.create_stream("idle", retention_hours=24)
    return srv, start


def api_total(srv, api):
    return srv.counters().get(api, {}).get("total", 0)


def check_clip(path, fragments):
    info = probe(path, "-count_frames", "-show_entries", "stream=codec_type,nb_read_frames,duration")
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert "audio" in streams
    assert int(streams["video"]["nb_read_frames"]) == fragments * 2 * FPS
    assert abs(float(streams["video"]["duration"]) - fragments * 2.0) <= 1.0 / FPS + 1e-6
    for t in (1, fragments * 2 * 0.37, fragments * 2 * 0.74, fragments * 2 - 3):
        r = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.2f}", "-i", path, "-frames:v", "5",
                            "-f", "null", "-"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and not r.stderr, (t, r.stderr)


def test_five_minute_clip_and_a_clip_of_450_fragments(clipsrv, mount, tmp_path):
    srv, start = clipsrv
    m = mount(srv)
    clips = m.path("clipcam", "clips")
    assert os.listdir(clips) == []
    five = os.path.join(clips, f"{stamp(start)}-{stamp(start + 299)}.mp4")  # 150 fragments
    before = api_total(srv, "GetClip")
    size = os.stat(five).st_size  # the first stat makes the clip
    assert api_total(srv, "GetClip") - before == 1
    assert size == len(open(five, "rb").read())
    check_clip(five, 150)
    long = os.path.join(clips, f"{stamp(start)}-{stamp(start + 899)}.mp4")  # 450 fragments
    before = api_total(srv, "GetClip")
    size = os.stat(long).st_size
    assert api_total(srv, "GetClip") - before == 3  # beyond one GetClip: 200 + 200 + 50
    copy1, copy2 = tmp_path / "a.mp4", tmp_path / "b.mp4"
    subprocess.run(["cp", long, str(copy1)], check=True)
    subprocess.run(["cp", long, str(copy2)], check=True)
    assert filecmp.cmp(copy1, copy2, shallow=False) and os.path.getsize(copy1) == size
    check_clip(str(copy1), 450)
    # listing shows the clips made, and never calls GetClip
    before = api_total(srv, "GetClip")
    assert sorted(os.listdir(clips)) == sorted([os.path.basename(five), os.path.basename(long)])
    subprocess.run(["ls", "-l", clips], check=True, capture_output=True)
    assert api_total(srv, "GetClip") == before
    # mpv plays it from the mount, with a seek
    r = subprocess.run(["mpv", "--no-config", "--vo=null", "--ao=null", "--start=600", "--frames=50",
                        long], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_two_readers_at_once_make_one_clip(clipsrv, mount):
    srv, start = clipsrv
    m = mount(srv)
    path = m.path("clipcam", "clips", f"{stamp(start + 700)}-{stamp(start + 799)}.mp4")
    before = api_total(srv, "GetClip")
    out, errs = [], []

    def read():
        try:
            with open(path, "rb") as f:
                out.append(f.read())
        except OSError as e:
            errs.append(e)

    ts = [threading.Thread(target=read) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    assert not errs and len(out) == 2 and out[0] == out[1]
    assert api_total(srv, "GetClip") - before == 1


def test_bad_ranges_get_their_errno(clipsrv, mount):
    srv, start = clipsrv
    m = mount(srv)
    m.expect_log("refused|no fragment|GetClip|clip")
    d = m.path("clipcam", "clips")
    day = 86400

    def err(name, stream="clipcam"):
        with pytest.raises(OSError) as e:
            os.stat(os.path.join(m.path(stream, "clips"), name))
        return e.value.errno

    assert err("yesterday.mp4") == errno.ENOENT
    assert err(f"{stamp(start)}-{stamp(start + 10)}.avi") == errno.ENOENT  # .mkv: test_mount_clips_mkv
    assert err(f"{stamp(start + 10)}-{stamp(start)}.mp4") == errno.EINVAL
    assert err(f"{stamp(start)}-{stamp(start + day + 1)}.mp4") == errno.EFBIG
    assert err(f"{stamp(start - 5 * 3600)}-{stamp(start - 4 * 3600)}.mp4") == errno.ENOENT
    assert err(f"{stamp(start - 10 * day)}-{stamp(start - 10 * day + 60)}.mp4") == errno.ENOENT
    assert err(f"{stamp(start)}-{stamp(start + 60)}.mp4", "idle") == errno.ENOENT
    assert os.path.isdir(d)


def test_clip_under_injected_faults_is_complete_and_identical(clipsrv, mount, tmp_path):
    srv, start = clipsrv
    name = f"{stamp(start + 300)}-{stamp(start + 699)}.mp4"  # 200 fragments, two parts
    m1 = mount(srv, name="clean")
    ref = open(m1.path("clipcam", "clips", name), "rb").read()
    srv.faults({"GetClip": {"error_rate": 0.1, "throttle_rate": 0.1}})
    try:
        m2 = mount(srv, name="faulty")
        got = open(m2.path("clipcam", "clips", name), "rb").read()
    finally:
        srv.clear_faults()
    assert got == ref


def test_codec_getclip_cannot_package_is_emediumtype(clipsrv, mount):
    from kvs_local.mediatest import pic_body
    srv, _ = clipsrv
    t0 = float(int(time.time()) - 300)
    srv.create_stream("mjpeg-cam", retention_hours=24)
    r = srv.put_media("mjpeg-cam", pic_body([{"number": 1, "type": "video", "codec_id": "V_MS/VFW/FOURCC",
                                               "codec_private": b"\x28" + b"\x00" * 39, "width": 1280,
                                               "height": 720}]),
                      timecode_type="RELATIVE", start_ts=t0)
    assert r.by_type("RECEIVED"), r.acks
    m = mount(srv)
    m.expect_log("UnsupportedStreamMediaType|GetClip|clip")
    with pytest.raises(OSError) as e:
        os.stat(m.path("mjpeg-cam", "clips", f"{stamp(t0 - 1)}-{stamp(t0 + 10)}.mp4"))
    assert e.value.errno == errno.EMEDIUMTYPE
    assert "UnsupportedStreamMediaType" in m.log()


def test_cache_size_evicts_old_clips_but_never_an_open_one(clipsrv, mount):
    srv, start = clipsrv
    m = mount(srv, cache_size="12M")
    m.expect_log("over|limit|pinned|evict")
    d = m.path("clipcam", "clips")
    names = [f"{stamp(start + k * 300)}-{stamp(start + k * 300 + 299)}.mp4" for k in range(3)]
    a = open(os.path.join(d, names[0]), "rb")  # ~8 MB, held open
    try:
        first = a.read(1 << 20)
        os.stat(os.path.join(d, names[1]))  # another ~8 MB: over the bound, but A is open
        rest = a.read()
        assert len(first) + len(rest) == os.fstat(a.fileno()).st_size
    finally:
        a.close()
    os.stat(os.path.join(d, names[2]))  # now the least recently used clip (A) goes
    listed = sorted(os.listdir(d))
    assert names[0] not in listed and names[2] in listed
    # an evicted clip is made again when asked for
    assert os.stat(os.path.join(d, names[0])).st_size > 0
