"""GetClip through the real AWS clients (boto3 and /usr/bin/aws) against kvs-local.

Streams are seeded with real signed PutMedia (kvs_local.seed); the clips are checked with ffprobe
(codecs, decoded frame count, duration) and by their top-level MP4 boxes (classic, not fragmented).
"""
import os
import subprocess
import time

import pytest

from kvs_local import seed
from kvs_local.mediatest import (archived_media, aws_get_clip, by_type, ffprobe_streams, fragments, max_gap,
                                 media_span, top_boxes, ts)

FPS = 25


@pytest.fixture(scope="module")
def avc_aac(srv, start_ts):
    r = srv.seed_testsrc("clip-avc-aac", duration=10, codec="h264", audio=True, start_ts=start_ts)
    assert len(r.by_type("PERSISTED")) == 5
    return "clip-avc-aac"


@pytest.fixture(scope="module")
def hevc_aac(srv, start_ts):
    r = srv.seed_testsrc("clip-hevc", duration=8, codec="h265", audio=True, start_ts=start_ts)
    assert len(r.by_type("PERSISTED")) == 4
    return "clip-hevc"


def _clip(am, stream, start, end, ts_type="PRODUCER_TIMESTAMP"):
    return am.get_clip(StreamName=stream, ClipFragmentSelector={
        "FragmentSelectorType": ts_type, "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}})


def _check_classic_mp4(path):
    boxes = top_boxes(path)
    assert boxes[0] == "ftyp"
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat")
    assert "moof" not in boxes


def test_get_clip_h264_aac_boto3(srv, avc_aac, start_ts, tmp_path):
    am = archived_media(srv, avc_aac)
    frs = fragments(am, avc_aac)
    assert len(frs) == 5
    r = _clip(am, avc_aac, start_ts - 1, start_ts + 9)
    assert r["ContentType"] == "video/mp4"
    out = tmp_path / "clip.mp4"
    out.write_bytes(r["Payload"].read())
    _check_classic_mp4(out)
    st = by_type(ffprobe_streams(str(out)))
    assert st["video"]["codec_name"] == "h264"
    assert st["audio"]["codec_name"] == "aac"
    assert int(st["video"]["nb_read_frames"]) == 10 * FPS
    n, span = media_span(str(out), "v")
    assert n == 250 and abs(span - 10.0) < 0.05
    assert max_gap(str(out), "v") < 0.05          # continuous across the 5 fragments
    _, aspan = media_span(str(out), "a")
    assert abs(aspan - 10.0) < 0.15


def test_get_clip_subrange_starts_inclusive(srv, avc_aac, start_ts, tmp_path):
    am = archived_media(srv, avc_aac)
    frs = fragments(am, avc_aac)
    # fragments whose START lies in [Start, End]: start_ts+1 .. start_ts+7 holds fragments 2, 3 and 4
    inside = [f for f in frs if start_ts + 1 <= ts(f["ProducerTimestamp"]) <= start_ts + 7]
    assert len(inside) == 3
    r = _clip(am, avc_aac, start_ts + 1, start_ts + 7)
    out = tmp_path / "sub.mp4"
    out.write_bytes(r["Payload"].read())
    st = by_type(ffprobe_streams(str(out)))
    assert int(st["video"]["nb_read_frames"]) == 3 * 2 * FPS


def test_get_clip_server_timestamp_selector(srv, avc_aac, tmp_path):
    am = archived_media(srv, avc_aac)
    frs = fragments(am, avc_aac)
    lo = int(min(ts(f["ServerTimestamp"]) for f in frs))
    hi = int(max(ts(f["ServerTimestamp"]) for f in frs)) + 1
    r = _clip(am, avc_aac, lo, hi, "SERVER_TIMESTAMP")
    out = tmp_path / "srv.mp4"
    out.write_bytes(r["Payload"].read())
    assert int(by_type(ffprobe_streams(str(out)))["video"]["nb_read_frames"]) == 250


def test_get_clip_h265_aac(srv, hevc_aac, start_ts, tmp_path):
    am = archived_media(srv, hevc_aac)
    r = _clip(am, hevc_aac, start_ts - 1, start_ts + 7)
    out = tmp_path / "hevc.mp4"
    out.write_bytes(r["Payload"].read())
    _check_classic_mp4(out)
    st = by_type(ffprobe_streams(str(out)))
    assert st["video"]["codec_name"] == "hevc"
    assert st["audio"]["codec_name"] == "aac"
    assert int(st["video"]["nb_read_frames"]) == 8 * FPS
    n, span = media_span(str(out), "v")
    assert abs(span - 8.0) < 0.05


def test_get_clip_aws_cli(srv, avc_aac, start_ts, tmp_path):
    out = tmp_path / "cli.mp4"
    p = aws_get_clip(srv, avc_aac, start_ts - 1, start_ts + 9, str(out))
    assert p.returncode == 0, p.stderr.decode()
    assb = p.stdout.decode()
    assert "video/mp4" in assb
    _check_classic_mp4(out)
    st = by_type(ffprobe_streams(str(out)))
    assert int(st["video"]["nb_read_frames"]) == 250 and st["audio"]["codec_name"] == "aac"


def test_get_clip_producer_sdk_layout(srv, tmp_path):
    """PIC-layout PutMedia (the C producer's sample H.264 frames, 45-frame GOPs) → GetClip."""
    start = float(int(time.time()) - 60)
    srv.create_stream("clip-pic")
    r = srv.put_media("clip-pic", seed.producer_stream(n_fragments=3), timecode_type="RELATIVE", start_ts=start)
    assert len(r.by_type("PERSISTED")) == 3
    am = archived_media(srv, "clip-pic")
    res = _clip(am, "clip-pic", start - 1, start + 10)
    out = tmp_path / "pic.mp4"
    out.write_bytes(res["Payload"].read())
    st = by_type(ffprobe_streams(str(out)))
    assert st["video"]["codec_name"] == "h264" and "audio" not in st
    assert int(st["video"]["nb_read_frames"]) == 3 * 45


def test_get_clip_cut_at_200_fragments(srv, tmp_path):
    """A range holding more than 200 fragments gives exactly the first 200 fragments' frames."""
    res = srv.seed_bulk("clip-bulk", count=230, interval_ms=2000)
    assert res["count"] == 230
    am = archived_media(srv, "clip-bulk")
    frs = fragments(am, "clip-bulk")
    assert len(frs) == 230
    first = ts(frs[0]["ProducerTimestamp"])
    last = ts(frs[-1]["ProducerTimestamp"])
    r = _clip(am, "clip-bulk", int(first), int(last) + 1)
    out = tmp_path / "bulk.mp4"
    out.write_bytes(r["Payload"].read())
    _check_classic_mp4(out)
    st = by_type(ffprobe_streams(str(out)))
    assert int(st["video"]["nb_read_frames"]) == 200 * 2 * FPS
    n, span = media_span(str(out), "v")
    assert abs(span - 400.0) < 0.1
    # and a range starting at fragment 31 ends at fragment 230: 200 fragments again
    r = _clip(am, "clip-bulk", int(ts(frs[30]["ProducerTimestamp"])), int(last) + 1)
    out2 = tmp_path / "bulk2.mp4"
    out2.write_bytes(r["Payload"].read())
    assert int(by_type(ffprobe_streams(str(out2)))["video"]["nb_read_frames"]) == 200 * 2 * FPS


def test_get_clip_g711_audio(srv, tmp_path):
    """H.264 + G.711 A-law (A_MS/ACM, the producer's sample frames): MP4 cannot carry G.711 through
    ffmpeg's mp4 muxer, so kvs-local delivers that track as AAC (video is still copied)."""
    import glob
    import struct
    from kvs_local.mediatest import h264_sample_track, pic_body
    alaw = [open(p, "rb").read() for p in sorted(glob.glob(
        os.path.join(seed.SAMPLES, "alawSampleFrames", "sample-*.alaw")))]
    if not alaw:
        pytest.skip("producer sample A-law frames not available")
    tracks = [h264_sample_track(),
              {"number": 2, "type": "audio", "codec_id": "A_MS/ACM", "sampling_frequency": 8000, "channels": 1,
               "codec_private": struct.pack("<HHIIHHH", 6, 1, 8000, 8000, 1, 8, 0)}]
    start = float(int(time.time()) - 60)
    srv.create_stream("clip-g711")
    r = srv.put_media("clip-g711", pic_body(tracks, 2, alaw, 20), timecode_type="RELATIVE", start_ts=start)
    assert len(r.by_type("PERSISTED")) == 2
    am = archived_media(srv, "clip-g711")
    out = tmp_path / "g711.mp4"
    out.write_bytes(_clip(am, "clip-g711", start - 1, start + 5)["Payload"].read())
    st = by_type(ffprobe_streams(str(out)))
    assert int(st["video"]["nb_read_frames"]) == 90
    assert st["audio"]["codec_name"] == "aac" and st["audio"]["sample_rate"] == "8000"
    assert abs(media_span(str(out), "a")[1] - 3.6) < 0.2


def test_get_clip_cut_at_100_mb(srv, tmp_path):
    """Fragments of the producer's sample frames are ~0.9 MB each: a range of 150 of them is cut after
    the last fragment that keeps the fragment data within 100 MB (silently, as the service does)."""
    from kvs_local.mediatest import h264_sample_track, pic_body
    start = float(int(time.time()) - 3600)
    srv.create_stream("clip-100mb", retention_hours=48)
    r = srv.put_media("clip-100mb", pic_body([h264_sample_track()], 3), timecode_type="RELATIVE", start_ts=start)
    templates = [a["FragmentNumber"] for a in r.by_type("PERSISTED")]
    assert len(templates) == 3
    srv.admin({"mode": "clone", "stream": "clip-100mb", "count": 150, "start": start, "interval_ms": 1800,
               "templates": templates}, "seed")
    am = archived_media(srv, "clip-100mb")
    frs = fragments(am, "clip-100mb")
    assert len(frs) == 150
    total, expected = 0, 0
    for f in frs:
        if total + f["FragmentSizeInBytes"] > 100 * 1024 * 1024:
            break
        total += f["FragmentSizeInBytes"]
        expected += 1
    assert 50 < expected < 150
    res = _clip(am, "clip-100mb", int(start), int(ts(frs[-1]["ProducerTimestamp"])) + 1)
    out = tmp_path / "big.mp4"
    with open(out, "wb") as f:
        for chunk in res["Payload"].iter_chunks(1 << 20):
            f.write(chunk)
    # (decoding 5000 frames of the 640x480 High-profile samples takes ~15 s of CPU: count packets, which
    # are whole frames here, and decode a slice at the start and at the end)
    st = by_type(ffprobe_streams(str(out), count_frames=False, count_packets=True))
    assert int(st["video"]["nb_read_packets"]) == expected * 45
    assert abs(media_span(str(out), "v")[1] - expected * 1.8) < 0.05
    for interval in ("%+#60", f"{expected * 1.8 - 3.6:.1f}%"):
        p = subprocess.run(["/usr/bin/ffprobe", "-v", "error", "-read_intervals", interval, "-count_frames",
                            "-select_streams", "v", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                            str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0 and int(p.stdout.split()[0]) >= 45, (interval, p.stdout, p.stderr)
