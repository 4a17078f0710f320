"""kvs-local's HLS fMP4 H.264 media, sample by sample: every sample is length-prefixed NAL units
(the length size the avcC announces) that fill it exactly, each segment starts with an IDR, and
the avcC and the samples equal those of ffmpeg's own fragmented MP4 of the same frames (an
independent muxer). (mpv/ffmpeg 5.1's "Invalid NAL unit size" when seeking an HLS fMP4 playlist
past what they have read is FFmpeg's HLS demuxer, fixed upstream in FFmpeg 380a518c: it happens
with ffmpeg's own HLS fMP4 too.)"""
import struct
import subprocess

import pytest

from kvs_local.media import iter_boxes
from kvs_local.mediatest import archived_media, fragments, hls_download, hls_tracks

CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "moof", "traf", "mvex"}


@pytest.fixture(scope="module")
def nal_stream(srv, start_ts):
    r = srv.seed_testsrc("hls-nal", duration=10, codec="h264", audio=True, start_ts=start_ts)
    assert len(r.by_type("PERSISTED")) == 5
    return "hls-nal"


def find(buf, path, start=0, end=None):
    """(payload start, end) of the first box along path, or None."""
    end = len(buf) if end is None else end
    for typ, s, h, e in iter_boxes(buf, start, end):
        if typ == path[0]:
            if len(path) == 1:
                return s + h, e
            if typ in CONTAINERS:
                r = find(buf, path[1:], s + h, e)
                if r:
                    return r
    return None


def avcc(init: bytes) -> bytes:
    p, e = find(init, ["moov", "trak", "mdia", "minf", "stbl", "stsd"])
    i = init.find(b"avcC", p, e)
    assert i > 0, "no avcC"
    size = struct.unpack(">I", init[i - 4:i])[0]
    return init[i + 4:i - 4 + size]


def samples(buf: bytes) -> list[bytes]:
    """Every sample of every moof/mdat pair (one track), in order."""
    out, pos = [], 0
    boxes = list(iter_boxes(buf))
    for k, (typ, s, h, e) in enumerate(boxes):
        if typ != "moof":
            continue
        p, pe = find(buf, ["traf", "tfhd"], s + h, e)
        tflags = int.from_bytes(buf[p + 1:p + 4], "big")
        q = p + 8 + (8 if tflags & 1 else 0) + (4 if tflags & 2 else 0) + (4 if tflags & 8 else 0)
        dsize = struct.unpack(">I", buf[q:q + 4])[0] if tflags & 0x10 else 0
        base = s  # default-base-is-moof (ffmpeg and kvs-local both set it)
        assert tflags & 0x20000 or not tflags & 1, "base data offset not relative to moof"
        p, pe = find(buf, ["traf", "trun"], s + h, e)
        flags = int.from_bytes(buf[p + 1:p + 4], "big")
        n = struct.unpack(">I", buf[p + 4:p + 8])[0]
        q = p + 8
        off = base
        if flags & 1:
            off += struct.unpack(">i", buf[q:q + 4])[0]
            q += 4
        else:
            off = boxes[k + 1][1] + boxes[k + 1][2]  # the next mdat's payload
        if flags & 4:
            q += 4
        for _ in range(n):
            if flags & 0x100:
                q += 4
            size = dsize
            if flags & 0x200:
                size = struct.unpack(">I", buf[q:q + 4])[0]
                q += 4
            q += 4 * sum(1 for b in (0x400, 0x800) if flags & b)
            out.append(buf[off:off + size])
            off += size
    return out


def nal_types(sample: bytes, length_size: int) -> list[int]:
    """NAL unit types of one length-prefixed sample; asserts the units fill it exactly."""
    types, p = [], 0
    while p < len(sample):
        assert p + length_size <= len(sample), "cut length prefix"
        n = int.from_bytes(sample[p:p + length_size], "big")
        assert 0 < n <= len(sample) - p - length_size, f"NAL unit size {n} at {p} of {len(sample)}"
        head = sample[p + length_size]
        assert head & 0x80 == 0, "forbidden_zero_bit set"
        types.append(head & 0x1F)
        p += length_size + n
    return types


def test_hls_fmp4_h264_samples_are_length_prefixed_nal_units_like_ffmpegs(srv, nal_stream, start_ts,
                                                                          tmp_path):
    am = archived_media(srv, nal_stream, "GET_HLS_STREAMING_SESSION_URL")
    url = am.get_hls_streaming_session_url(
        StreamName=nal_stream, PlaybackMode="ON_DEMAND", ContainerFormat="FRAGMENTED_MP4",
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": start_ts - 1,
                                                "EndTimestamp": start_ts + 9}})["HLSStreamingSessionURL"]
    ours = tmp_path / "v.mp4"
    _, segs = hls_download(hls_tracks(url)["1"], str(ours))
    assert len(segs) == 5
    data = ours.read_bytes()
    cfg = avcc(data)
    assert cfg[0] == 1, "avcC configurationVersion"
    length_size = (cfg[4] & 3) + 1
    got = samples(data)
    assert len(got) == 10 * 25
    idr_at = [i for i, s in enumerate(got) if 5 in nal_types(s, length_size)]
    assert idr_at == [0, 50, 100, 150, 200], idr_at  # one per 2-second segment, first
    # ffmpeg's own fragmented MP4 of the same frames, made from the fragments as the producer
    # sent them (GetMediaForFragmentList, one MKV document each, stream copy)
    ref_samples = []
    for k, f in enumerate(fragments(am, nal_stream)):
        mkv = tmp_path / f"f{k}.mkv"
        mkv.write_bytes(am.get_media_for_fragment_list(
            StreamName=nal_stream, Fragments=[f["FragmentNumber"]])["Payload"].read())
        ref = tmp_path / f"f{k}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mkv), "-map", "0:v:0", "-c", "copy",
                        "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4",
                        str(ref)], check=True, timeout=120)
        rdata = ref.read_bytes()
        assert avcc(rdata) == cfg
        ref_samples += samples(rdata)
    assert ref_samples == got
