"""kvsfs mounted on kvs-local: the tree, the bytes of fragments, sizes, names, errors."""
import datetime as dt
import errno
import os
import subprocess
import time

import pytest

from kvs_local.testing import gmffl
from kvsfs_testing import fragment_files, xattr

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def seeded(kvs):
    """Two short streams (H.264 video only; H.264 + AAC) two hours ago, plus filter decoys."""
    start = time.time() - 2 * 3600
    start -= start % 60  # keep the six fragments inside one hour folder
    kvs.create_stream("cam-video", retention_hours=48)
    kvs.seed_testsrc("cam-video", duration=12, start_ts=start)
    kvs.create_stream("cam-av", retention_hours=48)
    kvs.seed_testsrc("cam-av", duration=12, audio=True, start_ts=start)
    kvs.create_stream("other-1", retention_hours=30)
    return start


def hour_dir(m, stream, ts):
    t = dt.datetime.fromtimestamp(ts, UTC)
    return m.path(stream, "fragments", t.strftime("%Y-%m-%d"), t.strftime("%H"))


def test_streams_listed_and_filtered(kvs, seeded, mount):
    m = mount(kvs)
    assert {"cam-video", "cam-av", "other-1"} <= set(os.listdir(m.dir))
    assert sorted(os.listdir(m.path("cam-av"))) == ["clips", "fragments", "images", "ingest", "live.m3u8", "live.mpd"]
    m2 = mount(kvs, streams="cam-av:other-1")
    assert sorted(os.listdir(m2.dir)) == ["cam-av", "other-1"]
    m3 = mount(kvs, stream_prefix="cam-")
    assert sorted(os.listdir(m3.dir)) == ["cam-av", "cam-video"]
    # the comma form (split by FUSE's option parser) works too
    m4 = mount(kvs, **{"streams": "cam-video,other-1"})
    assert sorted(os.listdir(m4.dir)) == ["cam-video", "other-1"]
    with pytest.raises(FileNotFoundError):
        os.stat(m4.path("cam-av"))


def test_day_and_hour_folders_cover_the_retention_window(kvs, seeded, mount):
    m = mount(kvs)
    now = dt.datetime.now(UTC)
    start = now - dt.timedelta(hours=30)
    days = sorted(os.listdir(m.path("other-1", "fragments")))
    want_days = []
    d = start.date()
    while d <= now.date():
        want_days.append(d.isoformat())
        d += dt.timedelta(days=1)
    assert days == want_days
    first_hours = sorted(os.listdir(m.path("other-1", "fragments", want_days[0])))
    assert first_hours[0] == start.strftime("%H") and first_hours[-1] == "23"
    last_hours = sorted(os.listdir(m.path("other-1", "fragments", want_days[-1])))
    assert last_hours[0] == "00" and last_hours[-1] == now.strftime("%H")
    # outside the window: not found
    old = (start - dt.timedelta(days=2)).date().isoformat()
    with pytest.raises(FileNotFoundError):
        os.stat(m.path("other-1", "fragments", old))


@pytest.mark.parametrize("stream,audio", [("cam-video", False), ("cam-av", True)])
def test_fragment_bytes_equal_get_media_for_fragment_list(kvs, seeded, mount, stream, audio):
    m = mount(kvs)
    files = fragment_files(m.path(stream, "fragments"))
    assert len(files) == 6
    for f in files:
        number = xattr(f, "user.kvs.fragment_number")
        want = gmffl(kvs, stream, [number])
        with open(f, "rb") as fh:
            got = fh.read()
        assert got == want, f
        assert os.stat(f).st_size == len(want)
        p = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name",
                            "-of", "csv=p=0", f], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and not p.stderr, p.stderr
        kinds = sorted(line.split(",")[1] for line in p.stdout.split())
        assert kinds == (["audio", "video"] if audio else ["video"])


def test_every_file_stat_size_equals_bytes_read(kvs, seeded, mount):
    m = mount(kvs)
    checked = 0
    for d, _, files in os.walk(m.dir):
        for name in files:
            p = os.path.join(d, name)
            size = os.stat(p).st_size
            try:
                got = subprocess.run(["wc", "-c"], stdin=open(p, "rb"), capture_output=True,
                                     text=True, check=True).stdout.strip()
            except OSError as e:
                # live playlists of streams that are not live cannot be opened (documented)
                assert name in ("live.m3u8", "live.mpd") and e.errno == errno.ENODATA, (p, e)
                assert size == 0
                m.expect_log("stream is not live")
                continue
            assert int(got) == size, p
            checked += 1
    assert checked >= 12


def test_fragment_names_times_and_xattrs(kvs, seeded, mount):
    m = mount(kvs)
    hd = hour_dir(m, "cam-video", seeded)
    names = sorted(os.listdir(hd))
    assert len(names) == len(set(names)) == 6
    for n in names:
        p = os.path.join(hd, n)
        ts = float(xattr(p, "user.kvs.producer_timestamp"))
        t = dt.datetime.fromtimestamp(ts, UTC)
        assert n == t.strftime("%Y%m%dT%H%M%S.") + f"{round(ts * 1000) % 1000:03d}Z.mkv"
        st = os.stat(p)
        assert st.st_mtime_ns // 1_000_000 == round(ts * 1000)
        assert len(xattr(p, "user.kvs.fragment_number")) == 47
        assert int(xattr(p, "user.kvs.duration_ms")) > 0
        assert int(xattr(p, "user.kvs.kvs_size")) > 0
        assert float(xattr(p, "user.kvs.server_timestamp")) >= ts
    out = subprocess.run(["getfattr", "-d", os.path.join(hd, names[0])], capture_output=True,
                         text=True, check=True).stdout
    assert "user.kvs.fragment_number" in out


def test_read_only_tree_and_bad_names(kvs, seeded, mount):
    m = mount(kvs)
    hd = hour_dir(m, "cam-video", seeded)
    f = os.path.join(hd, sorted(os.listdir(hd))[0])

    def err(fn, *a):
        with pytest.raises(OSError) as e:
            fn(*a)
        return e.value.errno

    assert err(open, f, "wb") == errno.EROFS
    assert err(open, f, "ab") == errno.EROFS
    assert err(os.unlink, f) == errno.EROFS
    assert err(os.rename, f, f + ".x") == errno.EROFS
    assert err(os.mkdir, os.path.join(hd, "x")) == errno.EROFS
    assert err(os.rmdir, hd) == errno.EROFS
    assert err(open, os.path.join(hd, "new.mkv"), "w") == errno.EROFS
    assert err(os.truncate, f, 0) == errno.EROFS
    assert err(os.chmod, f, 0o644) == errno.EROFS
    assert err(os.setxattr, f, "user.x", b"1") == errno.EROFS
    assert err(os.symlink, "x", os.path.join(hd, "link")) == errno.EROFS
    fr = m.path("cam-video", "fragments")
    for bad in ["2024-13-01", "2024-02-30", "20240501", "x", ".hidden"]:
        assert err(os.stat, os.path.join(fr, bad)) == errno.ENOENT, bad
    day = sorted(os.listdir(fr))[-1]
    for bad in ["24", "7", "aa"]:
        assert err(os.stat, os.path.join(fr, day, bad)) == errno.ENOENT, bad
    for bad in ["20240501T120000.000Z.mp4", "20240501T120000Z.mkv", "nope.mkv",
                os.path.basename(f)[:-4] + "-123.mkv"]:
        assert err(os.stat, os.path.join(hd, bad)) == errno.ENOENT, bad
    assert err(os.stat, m.path("no-such-stream")) == errno.ENOENT
    # ".." walks up as usual
    assert os.path.samefile(os.path.join(hd, ".."), os.path.dirname(hd))
    assert os.path.samefile(os.path.join(hd, "..", ".."), fr)
    assert err(os.listdir, f) == errno.ENOTDIR
