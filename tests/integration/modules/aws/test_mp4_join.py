"""kvsfs-mp4 join on real GetClip-like parts made with ffmpeg.

Each scenario encodes a 10 s source (testsrc at 25 fps, GOP 50 = 2 s, optional sine AAC), cuts it
at GOP boundaries into Matroska pieces (ffmpeg's segment muxer, stream copy) and turns every piece
into a classic faststart MP4 exactly the way tests/kvs_local/media.py's make_clip does (``-f
matroska -i piece -c copy -movflags +faststart``, ``-tag:v hvc1`` for H.265). The parts are joined
with kvsfs-mp4 and the output is checked with ffprobe/ffmpeg. A second test makes the parts with
kvs-local's own GetClip code (media.make_clip on groups of 1-second fragments). Checks:

* the size kvsfs predicts (mp4_join_size) is the size written, also when read through pread;
* per stream, the frame count is the sum of the parts' (and the source's) and the duration is the
  sum within a frame;
* the joined file decodes without a single error, in full and from several seek points;
* against ffmpeg's concat demuxer on the same parts: same frame counts, identical audio packets,
  identical decoded video frames (framemd5) and the same video packet duration sum. (The concat
  output's stream durations are longer: the concat demuxer starts each file at its format start,
  adding the parts' edit-list offsets as gaps; see docs/MP4.md.)
"""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"

pytestmark = pytest.mark.skipif(not (os.path.exists(FFMPEG) and os.path.exists(FFPROBE)),
                                reason="ffmpeg/ffprobe not installed")

SCENARIOS = {
    "h264": {"video": ["-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-bf", "2",
                       "-sc_threshold", "0"], "audio": False, "tag": []},
    "h264_aac": {"video": ["-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-bf", "2",
                           "-sc_threshold", "0"], "audio": True, "tag": []},
    "h265": {"video": ["-c:v", "libx265", "-x265-params",
                       "keyint=50:min-keyint=50:scenecut=0:open-gop=0:log-level=error"],
             "audio": False, "tag": ["-tag:v", "hvc1"]},
}


def run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, timeout=300, **kw)


def make_pieces(d: pathlib.Path, sc: dict, gop: int = 50) -> list[pathlib.Path]:
    """Encodes d/src.mkv (10 s) and cuts it at every GOP into Matroska pieces (like fragments)."""
    src = d / "src.mkv"
    args = [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]
    if sc["audio"]:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    video = [a.replace("50", str(gop)) for a in sc["video"]]
    args += ["-t", "10", "-pix_fmt", "yuv420p"] + video
    if sc["audio"]:
        args += ["-c:a", "aac", "-b:a", "64k"]
    run(args + [str(src)])
    run([FFMPEG, "-v", "error", "-y", "-i", str(src), "-map", "0", "-c", "copy", "-f", "segment",
         "-segment_time", str(gop / 25), "-segment_format", "matroska", str(d / "piece%d.mkv")])
    return sorted(d.glob("piece*.mkv"), key=lambda p: int(p.stem[5:]))


def make_parts(d: pathlib.Path, sc: dict) -> list[pathlib.Path]:
    pieces = make_pieces(d, sc)
    parts = []
    for i, piece in enumerate(pieces):
        out = d / f"part{i}.mp4"
        args = [FFMPEG, "-v", "error", "-y", "-f", "matroska", "-i", str(piece), "-map", "0:v:0",
                "-c:v", "copy"]
        if sc["audio"]:
            args += ["-map", "0:a:0", "-c:a", "copy"]
        args += sc["tag"] + ["-movflags", "+faststart", "-f", "mp4", str(out)]
        run(args)
        parts.append(out)
    return parts


def probe(path) -> dict:
    out = run([FFPROBE, "-v", "error", "-count_frames", "-show_entries",
               "stream=codec_type,codec_name,codec_tag_string,duration,nb_read_frames,time_base"
               ":format=duration", "-of", "json", str(path)]).stdout
    return json.loads(out)


def streams(info: dict, kind: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def packet_md5s(path, stream: int) -> list[tuple[str, str]]:
    out = run([FFMPEG, "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy", "-f",
               "framemd5", "-"]).stdout.decode()
    rows = [line.split(",") for line in out.splitlines() if line and not line.startswith("#")]
    return [(r[4].strip(), r[5].strip()) for r in rows]  # (size, md5)


def decoded_md5s(path) -> list[str]:
    out = run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framemd5", "-"]).stdout
    return [line.split(",")[5].strip() for line in out.decode().splitlines()
            if line and not line.startswith("#")]


def packet_duration_sum(path, sel: str) -> int:
    out = run([FFPROBE, "-v", "error", "-select_streams", sel, "-show_entries", "packet=duration",
               "-of", "csv=p=0", str(path)]).stdout.decode()
    return sum(int(x) for x in out.split() if x.strip().isdigit())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_join_matches_parts_and_concat(name, tool, tmp_path):
    parts = make_parts(tmp_path, SCENARIOS[name])
    check_join(name, tool, tmp_path, parts)


@pytest.mark.parametrize("name", ["h264_aac", "h265"])
def test_join_kvs_local_getclip_parts(name, tool, tmp_path):
    """Parts made by kvs-local's own GetClip code (media.make_clip) from 1-second fragments, 3 or
    4 fragments per part, exactly as kvsfs will receive them."""
    from kvs_local import media
    pieces = make_pieces(tmp_path, SCENARIOS[name], gop=25)
    docs = [media.parse_mkv(p.read_bytes()) for p in pieces]
    assert len(docs) == 10
    parts = []
    for i, group in enumerate([docs[0:3], docs[3:6], docs[6:10]]):
        z0 = media.local_zero(group[0])
        frags = [(round((media.local_zero(d) - z0) * d.timecode_scale / 1e6), d) for d in group]
        path = media.make_clip(frags, group[0].tracks, str(tmp_path / "work"))
        out = tmp_path / f"clip{i}.mp4"
        shutil.move(path, out)
        parts.append(out)
    check_join(name, tool, tmp_path, parts)


def check_join(name, tool, tmp_path, parts):
    sc = SCENARIOS[name]
    assert len(parts) >= 3

    out = tmp_path / "joined.mp4"
    res = run([tool("kvsfs-mp4"), "join", str(out)] + [str(p) for p in parts])
    rep = json.loads(res.stdout)
    assert rep["size"] == rep["written"] == out.stat().st_size

    # the pread path (as FUSE reads) gives the same bytes
    out2 = tmp_path / "joined-pread.mp4"
    rep2 = json.loads(run([tool("kvsfs-mp4"), "join", "--chunk", "4093", str(out2)]
                          + [str(p) for p in parts]).stdout)
    assert rep2["size"] == rep["size"]
    assert out2.read_bytes() == out.read_bytes()

    pinfo = [probe(p) for p in parts]
    oinfo = probe(out)
    kinds = ["video", "audio"] if sc["audio"] else ["video"]
    for kind in kinds:
        got = streams(oinfo, kind)
        assert len(got) == 1, f"joined file lacks its {kind} stream"
        want_frames = sum(int(streams(p, kind)[0]["nb_read_frames"]) for p in pinfo)
        assert int(got[0]["nb_read_frames"]) == want_frames
        want_dur = sum(float(streams(p, kind)[0]["duration"]) for p in pinfo)
        frame = 1 / 25 if kind == "video" else 1024 / 44100
        assert abs(float(got[0]["duration"]) - want_dur) <= frame + 1e-6, (kind, got[0], want_dur)
    # and the source's frames are all there
    sinfo = probe(tmp_path / "src.mkv")
    for kind in kinds:
        assert streams(oinfo, kind)[0]["nb_read_frames"] == streams(sinfo, kind)[0]["nb_read_frames"]
    v = streams(oinfo, "video")[0]
    assert v["codec_name"] == ("hevc" if name == "h265" else "h264")
    if name == "h265":
        assert v["codec_tag_string"] == "hvc1"

    # kvsfs-mp4 dump agrees with the join report
    dump = json.loads(run([tool("kvsfs-mp4"), "dump", str(out)]).stdout)
    assert [t["samples"] for t in dump["tracks"]] == [t["samples"] for t in rep["tracks"]]
    assert dump["tracks"][0]["codec"] == ("hvc1" if name == "h265" else "avc1")
    if sc["audio"]:
        assert dump["tracks"][1]["codec"] == "mp4a"

    # decodes cleanly: in full and from several seek points (inside and across part boundaries)
    full = run([FFMPEG, "-v", "error", "-i", str(out), "-f", "null", "-"])
    assert full.stderr == b""
    for t in ("0", "1.9", "2.0", "3.96", "4.5", "6.04", "8.0", "9.5"):
        r = run([FFMPEG, "-v", "error", "-ss", t, "-i", str(out), "-frames:v", "5", "-f", "null", "-"])
        assert r.stderr == b"", (t, r.stderr)

    # against ffmpeg's concat demuxer
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"file '{p}'\n" for p in parts))
    cat = tmp_path / "concat.mp4"
    run([FFMPEG, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-map", "0",
         "-c", "copy"] + sc["tag"] + [str(cat)])
    cinfo = probe(cat)
    for kind in kinds:
        assert streams(cinfo, kind)[0]["nb_read_frames"] == streams(oinfo, kind)[0]["nb_read_frames"]
        if kind == "video":  # concat stretches audio packets over the gaps it adds
            assert packet_duration_sum(out, "v") == packet_duration_sum(cat, "v")
    assert decoded_md5s(out) == decoded_md5s(cat)
    if sc["audio"]:
        assert packet_md5s(out, 1) == packet_md5s(cat, 1)


def test_join_refuses_different_codecs(tool, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_parts(tmp_path / "a", SCENARIOS["h264"])
    b = make_parts(tmp_path / "b", SCENARIOS["h265"])
    r = subprocess.run([tool("kvsfs-mp4"), "join", str(tmp_path / "x.mp4"), str(a[0]), str(b[1])],
                       capture_output=True, timeout=60)
    assert r.returncode == 2
    assert b"sample description" in r.stderr


def test_join_refuses_garbage(tool, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x10moov\x00\x00\x00\x20trak")
    r = subprocess.run([tool("kvsfs-mp4"), "dump", str(bad)], capture_output=True, timeout=60)
    assert r.returncode == 2
    assert b"kvsfs-mp4:" in r.stderr
    r = subprocess.run([tool("kvsfs-mp4"), "join", str(tmp_path / "o.mp4"), str(bad)],
                       capture_output=True, timeout=60)
    assert r.returncode == 2
    assert not (tmp_path / "o.mp4").exists()
