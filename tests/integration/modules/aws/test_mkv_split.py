"""kvsfs-mkv split / dump: cutting KVS media bodies into fragments, checked with ffprobe and cmp.

- The real GetMedia capture output_get_media.mkv is split while streamed in odd-sized chunks; every
  piece must be a complete MKV that ffprobe reads alone (640x360 H.264, 60 frames), and the pieces
  concatenated must give back the original bytes exactly (cmp).
- Every real capture round-trips the same way, with the fragment counts from its README.
- Streams made here with ffmpeg (a "live" MKV: unknown-size Segment, like KVS) and concatenated
  several times: our per-track block counts, sizes and codec ids must match what ffprobe reports.
"""
import json
import pathlib
import shutil
import subprocess

import pytest

FFPROBE = shutil.which("ffprobe")
FFMPEG = shutil.which("ffmpeg")

REAL_COUNTS = {
    "output_get_media.mkv": 5,
    "output_get_media_sparse_fragments.mkv": 3,
    "output-get-media-non-increasing-timecode.mkv": 12,
    "output-get-media-equal-timecode.mkv": 2,
    "kinesis_video_renderer_example_output.mkv": 8,
    "test_mixed_tags.mkv": 10,
    "empty-mkv-with-tags.mkv": 1,
    "test_tags_empty_cluster.mkv": 1,
    "output_get_media_sparse_fragments_merged.mkv": 1,
}


def run_split(tool, src, outdir, chunk):
    outdir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([tool("kvsfs-mkv"), "split", str(src), str(outdir), "--chunk", str(chunk)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def ffprobe_streams(path):
    res = subprocess.run([FFPROBE, "-v", "error", "-count_packets", "-count_frames", "-show_entries",
                          "stream=codec_type,codec_name,width,height,nb_read_packets,nb_read_frames,"
                          "sample_rate,channels", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=120)
    return res.returncode, res.stderr, json.loads(res.stdout or "{}").get("streams", [])


def cmp_files(a, b):
    return subprocess.run(["cmp", str(a), str(b)], capture_output=True).returncode == 0


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed")
def test_split_output_get_media_pieces_play_alone(tool, shared_dir, tmp_path):
    src = shared_dir / "testdata" / "kvs-real" / "output_get_media.mkv"
    frags = run_split(tool, src, tmp_path / "out", 4093)
    assert len(frags) == 5
    pieces = [pathlib.Path(f["file"]) for f in frags]
    for f, piece in zip(frags, pieces):
        assert piece.stat().st_size == f["length"]
        assert piece.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
        assert f["complete"] and not f["truncated"] and not f["malformed"]
        rc, err, streams = ffprobe_streams(piece)
        assert rc == 0, err
        video = [s for s in streams if s.get("codec_type") == "video"]
        assert len(video) == 1
        assert video[0]["codec_name"] == "h264"
        assert (video[0]["width"], video[0]["height"]) == (640, 360)
        assert int(video[0]["nb_read_frames"]) == 60
        assert f["tracks"][0]["blocks"] == 60
    joined = tmp_path / "joined.mkv"
    with open(joined, "wb") as out:
        for piece in pieces:
            out.write(piece.read_bytes())
    assert cmp_files(joined, src)


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_split_real_capture_roundtrip(tool, shared_dir, tmp_path, name):
    src = shared_dir / "testdata" / "kvs-real" / name
    for chunk in (1 if src.stat().st_size < 30000 else 977, 65536):
        out = tmp_path / f"out{chunk}"
        frags = run_split(tool, src, out, chunk)
        assert len(frags) == REAL_COUNTS[name]
        assert sum(f["length"] for f in frags) == src.stat().st_size
        joined = tmp_path / f"joined{chunk}"
        with open(joined, "wb") as w:
            for f in frags:
                w.write(pathlib.Path(f["file"]).read_bytes())
        assert cmp_files(joined, src)


@pytest.mark.skipif(FFPROBE is None or FFMPEG is None, reason="ffmpeg/ffprobe not installed")
def test_ffmpeg_live_documents_match_ffprobe(tool, tmp_path):
    docs = []
    for i, (size, rate) in enumerate([("64x48", 10), ("32x32", 5), ("48x64", 15)]):
        p = tmp_path / f"doc{i}.mkv"
        subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "2",
                        "-c:v", "mpeg4", "-c:a", "aac", "-live", "1", "-cluster_time_limit", "1000",
                        "-f", "matroska", str(p)], check=True, timeout=120)
        docs.append(p)
    stream = tmp_path / "stream.mkv"
    stream.write_bytes(b"".join(p.read_bytes() for p in docs))
    frags = run_split(tool, stream, tmp_path / "out", 333)
    assert len(frags) == 3
    for f, doc in zip(frags, docs):
        piece = pathlib.Path(f["file"])
        assert cmp_files(piece, doc)
        assert f["complete"] and f["doc_type"] == "matroska"
        rc, err, streams = ffprobe_streams(doc)
        assert rc == 0, err
        by_type = {s["codec_type"]: s for s in streams}
        tracks = {t["type"]: t for t in f["tracks"]}
        v, a = tracks[1], tracks[2]
        assert v["codec_id"] == "V_MPEG4/ISO/ASP" and a["codec_id"] == "A_AAC"
        assert (v["width"], v["height"]) == (by_type["video"]["width"], by_type["video"]["height"])
        assert v["blocks"] == int(by_type["video"]["nb_read_packets"])
        assert a["blocks"] == int(by_type["audio"]["nb_read_packets"])
        assert a["sampling_frequency"] == 8000 and a["channels"] == 1
        assert 1900 <= f["duration_ms"] <= 2200
        assert f["clusters"] >= 2
        assert f["unsized_clusters"] == 0


def test_dump_reports_truncation(tool, shared_dir):
    src = shared_dir / "testdata" / "kvs-real" / "output-get-media-equal-timecode.mkv"
    res = subprocess.run([tool("kvsfs-mkv"), "dump", str(src)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0
    frags = [json.loads(line) for line in res.stdout.splitlines()]
    assert [f["truncated"] for f in frags] == [False, True]
    assert [f["cluster_timecode"] for f in frags] == [0, 0]
    assert "4660 bytes" in frags[1]["problem"]
