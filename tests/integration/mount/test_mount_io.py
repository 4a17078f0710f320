"""kvsfs mounted on kvs-local: copying, rsync, listing cost, faults, quotas, live playlists."""
import datetime as dt
import errno
import filecmp
import os
import re
import subprocess
import threading
import time

import pytest

from kvs_local.testing import gmffl
from kvsfs_testing import fragment_files, xattr

UTC = dt.timezone.utc


def api_count(counters, api):
    c = counters.get(api)
    return c["total"] if c else 0


def hour_path(m, stream, ts):
    t = dt.datetime.fromtimestamp(ts, UTC)
    return m.path(stream, "fragments", t.strftime("%Y-%m-%d"), t.strftime("%H"))


@pytest.fixture(scope="module")
def minute(kvs):
    """A stream with one minute of 2-second fragments (30), inside one past hour."""
    start = time.time() - 5 * 3600
    start -= start % 3600
    start += 600
    kvs.create_stream("minute", retention_hours=24)
    kvs.seed_testsrc("minute", duration=60, start_ts=start)
    return start


def test_rsync_twice_copies_nothing_the_second_time(kvs, minute, mount, tmp_path):
    m = mount(kvs)
    src = m.path("minute", "fragments") + "/"
    dst = str(tmp_path / "backup") + "/"
    r1 = subprocess.run(["rsync", "-a", "--stats", src, dst], capture_output=True, text=True, timeout=300)
    assert r1.returncode == 0, r1.stderr
    n1 = int(re.search(r"Number of regular files transferred: ([\d,]+)", r1.stdout).group(1).replace(",", ""))
    assert n1 == 30
    r2 = subprocess.run(["rsync", "-a", "--stats", src, dst], capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr
    n2 = int(re.search(r"Number of regular files transferred: ([\d,]+)", r2.stdout).group(1).replace(",", ""))
    assert n2 == 0
    for f in fragment_files(dst):
        rel = os.path.relpath(f, dst)
        assert filecmp.cmp(f, os.path.join(src, rel), shallow=False)
        assert os.stat(f).st_mtime_ns == os.stat(os.path.join(src, rel)).st_mtime_ns


def test_ls_lR_of_a_day_of_43200_fragments_downloads_no_media(kvs_server, mount):
    srv = kvs_server()
    day = (dt.datetime.now(UTC) - dt.timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    res = srv.seed_bulk("bulk-day", count=43200, start_ts=day.timestamp(), interval_ms=2000)
    assert res.get("count", 43200) >= 43200 or res
    m = mount(srv)
    srv.reset_counters()
    out = subprocess.run(["ls", "-lR", m.path("bulk-day", "fragments", day.strftime("%Y-%m-%d"))],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    files = [l for l in out.stdout.splitlines() if l.startswith("-")]
    assert len(files) == 43200
    c = srv.counters()
    assert api_count(c, "GetMediaForFragmentList") == 0
    assert api_count(c, "GetMedia") == 0
    assert 24 <= api_count(c, "ListFragments") <= 24 * 3, c.get("ListFragments")


def test_cp_r_under_faults_gives_identical_bytes(kvs, minute, mount, tmp_path):
    m = mount(kvs)
    src = hour_path(m, "minute", minute)
    names = sorted(os.listdir(src))  # list before the faults start
    kvs.faults({"GetMediaForFragmentList": {"error_rate": 0.1, "throttle_rate": 0.1, "reset_rate": 0.1},
                "ListFragments": {"error_rate": 0.1, "throttle_rate": 0.1},
                "GetDataEndpoint": {"error_rate": 0.1, "throttle_rate": 0.1}})
    try:
        dst = tmp_path / "copy"
        r = subprocess.run(["cp", "-r", src, str(dst)], capture_output=True, text=True, timeout=600)
    finally:
        kvs.clear_faults()
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(dst)) == names
    for n in names:
        number = xattr(os.path.join(src, n), "user.kvs.fragment_number")
        assert (dst / n).read_bytes() == gmffl(kvs, "minute", [number]), n
    m.expect_log(r"giving up after|failed|Injected|retr")  # retried faults may log while retrying


def test_eight_parallel_readers_with_quotas_see_no_error(kvs, minute, mount):
    m = mount(kvs, readahead=4)
    src = hour_path(m, "minute", minute)
    files = sorted(os.listdir(src))
    errors, sizes = [], {}

    def reader(k):
        try:
            order = files[k::2] if k % 2 else files  # half read everything, half a slice
            for n in order:
                with open(os.path.join(src, n), "rb") as f:
                    data = f.read()
                sizes.setdefault(n, set()).add(len(data))
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for n in files:
        assert sizes[n] == {os.stat(os.path.join(src, n)).st_size}, n


def test_live_playlist_opens_in_ffprobe_and_reuses_the_session(kvs, mount):
    kvs.create_stream("live-cam", retention_hours=2)
    cam = kvs.seed_live("live-cam")
    try:
        time.sleep(5)  # a few fragments
        m = mount(kvs)
        kvs.reset_counters()
        pl = m.path("live-cam", "live.m3u8")
        st = os.stat(pl)
        assert st.st_mode & 0o777 == 0o400
        text = open(pl).read()
        assert len(text) == st.st_size
        assert text.startswith("#EXTM3U")
        assert re.search(r"^https?://.*SessionToken=", text, re.M)
        # ffmpeg lets a playlist read from a local file reach only local files unless the
        # protocols are allowed explicitly (its own security rule; see docs/SEMANTICS.md)
        p = subprocess.run(["ffprobe", "-v", "error", "-protocol_whitelist",
                            "file,http,https,tcp,tls,crypto,data", "-show_entries",
                            "stream=codec_name", "-of", "csv=p=0", pl],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "h264" in p.stdout
        # mpv opens the playlist file directly, with no option
        p = subprocess.run(["mpv", "--no-config", "--vo=null", "--ao=null", "--frames=30", pl],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "h264" in p.stdout
        open(pl).read()
        assert api_count(kvs.counters(), "GetHLSStreamingSessionURL") == 1
        mpd = open(m.path("live-cam", "live.mpd")).read()
        assert "<Location>" in mpd and "<BaseURL>" in mpd
        # the URL inside plays in a browser: headless Chromium with hls.js
        from kvs_local import webplayer
        assert webplayer.chromium_path(), "chromium is not installed (scripts/test installs it)"
        assert webplayer.ensure_hlsjs(), "hls.js could not be installed with npm"
        url = [l for l in text.splitlines() if l.startswith("http")][0]
        rep = webplayer.play(url, mode="live", wait_ms=60000, timeout=120, goal=4.0)
        assert webplayer.advance(rep) >= 3, rep
    finally:
        cam.stop()


def test_live_playlist_of_an_idle_stream_fails_with_enodata(kvs, mount):
    kvs.create_stream("idle-cam", retention_hours=2)  # no fragment in the last 30 s
    m = mount(kvs)
    m.expect_log("stream is not live")
    for name in ("live.m3u8", "live.mpd"):
        with pytest.raises(OSError) as e:
            open(m.path("idle-cam", name)).read()
        assert e.value.errno == errno.ENODATA
        assert os.stat(m.path("idle-cam", name)).st_size == 0
