"""Media packaging for kvs-local: GetClip MP4, HLS/DASH fMP4 segments, GetImages frames.

Everything here works on the single-fragment MKV documents that ``Store.fragment_mkv`` returns
(EBML header, unknown-size Segment, Info, Tracks, Tags, one Cluster).  The fragments are parsed
with a small EBML reader, re-timed onto a common timeline, written back as one clean Matroska
document (normalised codec IDs, one Segment, sized Clusters) and handed to Debian's ffmpeg, which
does the real container work with ``-c copy`` (no re-encode of video or AAC audio):

* ``make_clip``: a classic, non-fragmented MP4 (ftyp, moov, mdat; ``-movflags +faststart``).
* ``make_fmp4``: per fragment and track a fragmented MP4 (ftyp+moov init part, moof+mdat media
  part); ``shift_tfdt`` moves the media part onto the session timeline at serve time, so one cached
  conversion serves every session.
* ``make_ts``: an MPEG-TS segment with all tracks (HLS ContainerFormat MPEG_TS).
* ``extract_image``: one JPEG/PNG frame.

Codec checks (``check_tracks``) raise the KVS exceptions for unsupported codecs and missing codec
private data.  No output is ever hard-coded: every byte of media comes from the stored fragments.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field

from .errors import KvsError

FFMPEG = "/usr/bin/ffmpeg"

# ----------------------------------------------------------------------------------------------
# Codec identification
# ----------------------------------------------------------------------------------------------

H264_IDS = {"V_MPEG4/ISO/AVC", "V_MPEG/ISO/AVC"}
H265_IDS = {"V_MPEGH/ISO/HEVC", "V_MPEG/ISO/HEVC"}
AAC_PREFIX = "A_AAC"
G711_ID = "A_MS/ACM"

CANONICAL_CODEC_ID = {
    "V_MPEG/ISO/AVC": "V_MPEG4/ISO/AVC",
    "V_MPEG/ISO/HEVC": "V_MPEGH/ISO/HEVC",
}


def codec_kind(codec_id: str | None) -> str | None:
    """'h264' | 'h265' | 'aac' | 'g711' | None (unsupported)."""
    if not codec_id:
        return None
    if codec_id in H264_IDS:
        return "h264"
    if codec_id in H265_IDS:
        return "h265"
    if codec_id.startswith(AAC_PREFIX):
        return "aac"
    if codec_id == G711_ID:
        return "g711"
    return None


def check_tracks(tracks: list[dict], allow_g711: bool) -> None:
    """Raise the KVS exception for tracks that GetClip/HLS/DASH cannot package.

    Track 1 must be H.264 or H.265; an optional track 2 may be AAC (or G.711 for GetClip/DASH).
    """
    if not tracks:
        raise KvsError(400, "UnsupportedStreamMediaTypeException",
                       "The stream has no track information.")
    by_no = sorted(tracks, key=lambda t: t.get("number", 0))
    video = by_no[0]
    if codec_kind(video.get("codec_id")) not in ("h264", "h265") or video.get("type", "video") != "video":
        raise KvsError(400, "UnsupportedStreamMediaTypeException",
                       f"The type of the media ({video.get('codec_id')}) is not supported "
                       "or the track is not video.")
    if len(by_no) > 2:
        raise KvsError(400, "UnsupportedStreamMediaTypeException",
                       "At most one video and one audio track are supported.")
    allowed_audio = ("aac", "g711") if allow_g711 else ("aac",)
    for t in by_no[1:]:
        if codec_kind(t.get("codec_id")) not in allowed_audio:
            raise KvsError(400, "UnsupportedStreamMediaTypeException",
                           f"The type of the media ({t.get('codec_id')}) is not supported.")
    for t in by_no:
        if not t.get("codec_private"):
            raise KvsError(400, "MissingCodecPrivateDataException",
                           f"No codec private data found in track {t.get('number')}.")
    for t in by_no:
        kind = codec_kind(t.get("codec_id"))
        cp = t["codec_private"]
        bad = ((kind == "h264" and (len(cp) < 7 or cp[0] != 1))
               or (kind == "h265" and (len(cp) < 23 or cp[0] != 1))
               or (kind == "aac" and len(cp) < 2)
               or (kind == "g711" and len(cp) < 16))
        if bad:
            raise KvsError(400, "InvalidCodecPrivateDataException",
                           f"The codec private data in track {t.get('number')} is not valid.")


def rfc6381_codec(track: dict) -> str:
    """CODECS string for HLS/DASH from the codec private data."""
    kind = codec_kind(track.get("codec_id"))
    cp = track.get("codec_private") or b""
    if kind == "h264" and len(cp) >= 4:
        return "avc1.%02x%02x%02x" % (cp[1], cp[2], cp[3])
    if kind == "h265" and len(cp) >= 13:
        profile_space = cp[1] >> 6
        tier = (cp[1] >> 5) & 1
        profile_idc = cp[1] & 0x1F
        compat = struct.unpack(">I", cp[2:6])[0]
        rev = int(f"{compat:032b}"[::-1], 2)
        constraints = list(cp[6:12])
        while constraints and constraints[-1] == 0:
            constraints.pop()
        level = cp[12]
        s = "hvc1.%s%d.%X.%s%d" % ("" if profile_space == 0 else "ABC"[profile_space - 1],
                                   profile_idc, rev, "H" if tier else "L", level)
        for c in constraints:
            s += ".%X" % c
        return s
    if kind == "aac":
        aot = (cp[0] >> 3) if cp else 2
        if aot == 31 and len(cp) >= 2:
            aot = 32 + (((cp[0] & 7) << 3) | (cp[1] >> 5))
        return "mp4a.40.%d" % aot
    if kind == "g711":
        tag = struct.unpack("<H", cp[:2])[0] if len(cp) >= 2 else 6
        return "alaw" if tag == 6 else "ulaw"
    return "unknown"


# ----------------------------------------------------------------------------------------------
# Minimal EBML / Matroska reader and writer
# ----------------------------------------------------------------------------------------------

ID_EBML = 0x1A45DFA3
ID_SEGMENT = 0x18538067
ID_CLUSTER = 0x1F43B675
ID_INFO = 0x1549A966
ID_TIMECODE_SCALE = 0x2AD7B1
ID_TRACKS = 0x1654AE6B
ID_TRACK_ENTRY = 0xAE
ID_TRACK_NUMBER = 0xD7
ID_TRACK_UID = 0x73C5
ID_TRACK_TYPE = 0x83
ID_CODEC_ID = 0x86
ID_CODEC_PRIVATE = 0x63A2
ID_DEFAULT_DURATION = 0x23E383
ID_VIDEO = 0xE0
ID_PIXEL_WIDTH = 0xB0
ID_PIXEL_HEIGHT = 0xBA
ID_AUDIO = 0xE1
ID_SAMPLING_FREQ = 0xB5
ID_CHANNELS = 0x9F
ID_BIT_DEPTH = 0x6264
ID_TIMECODE = 0xE7
ID_SIMPLE_BLOCK = 0xA3
ID_BLOCK_GROUP = 0xA0
ID_BLOCK = 0xA1
ID_BLOCK_DURATION = 0x9B
ID_REFERENCE_BLOCK = 0xFB


class MkvError(Exception):
    pass


def _read_id(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise MkvError("truncated element id")
    b = buf[pos]
    length = 1
    mask = 0x80
    while length <= 4 and not (b & mask):
        mask >>= 1
        length += 1
    if length > 4 or pos + length > len(buf):
        raise MkvError("bad element id at %d" % pos)
    return int.from_bytes(buf[pos:pos + length], "big"), pos + length


def _read_size(buf: bytes, pos: int) -> tuple[int | None, int]:
    """Element data size; None means 'unknown size'."""
    if pos >= len(buf):
        raise MkvError("truncated size")
    b = buf[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not (b & mask):
        mask >>= 1
        length += 1
    if length > 8 or pos + length > len(buf):
        raise MkvError("bad size vint at %d" % pos)
    value = b & (mask - 1)
    all_ones = value == mask - 1
    for i in range(1, length):
        value = (value << 8) | buf[pos + i]
        all_ones = all_ones and buf[pos + i] == 0xFF
    return (None if all_ones else value), pos + length


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big") if data else 0


def _float(data: bytes) -> float:
    if len(data) == 4:
        return struct.unpack(">f", data)[0]
    if len(data) == 8:
        return struct.unpack(">d", data)[0]
    return 0.0


def _children(buf: bytes, start: int, end: int):
    pos = start
    while pos < end:
        eid, p = _read_id(buf, pos)
        size, p = _read_size(buf, p)
        if size is None:
            size = end - p
        yield eid, buf[p:p + size]
        pos = p + size


@dataclass
class Frame:
    track: int
    ts: int            # in timecode-scale ticks, absolute as written in the MKV
    key: bool
    data: bytes
    duration: int | None = None   # ticks, from BlockGroup/BlockDuration


@dataclass
class MkvDoc:
    timecode_scale: int = 1_000_000
    tracks: list[dict] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)


def _parse_track(data: bytes) -> dict:
    t: dict = {"number": 0, "type": None, "codec_id": None, "codec_private": b""}
    for eid, d in _children(data, 0, len(data)):
        if eid == ID_TRACK_NUMBER:
            t["number"] = _uint(d)
        elif eid == ID_TRACK_UID:
            t["uid"] = _uint(d)
        elif eid == ID_TRACK_TYPE:
            t["type"] = {1: "video", 2: "audio"}.get(_uint(d), str(_uint(d)))
        elif eid == ID_CODEC_ID:
            t["codec_id"] = d.rstrip(b"\0").decode("ascii", "replace")
        elif eid == ID_CODEC_PRIVATE:
            t["codec_private"] = bytes(d)
        elif eid == ID_DEFAULT_DURATION:
            t["default_duration_ns"] = _uint(d)
        elif eid == ID_VIDEO:
            for vid, vd in _children(d, 0, len(d)):
                if vid == ID_PIXEL_WIDTH:
                    t["width"] = _uint(vd)
                elif vid == ID_PIXEL_HEIGHT:
                    t["height"] = _uint(vd)
        elif eid == ID_AUDIO:
            for aid, ad in _children(d, 0, len(d)):
                if aid == ID_SAMPLING_FREQ:
                    t["sampling_frequency"] = _float(ad)
                elif aid == ID_CHANNELS:
                    t["channels"] = _uint(ad)
                elif aid == ID_BIT_DEPTH:
                    t["bit_depth"] = _uint(ad)
    return t


def _parse_block(d: bytes, cluster_tc: int, key_hint: bool | None, duration: int | None) -> Frame:
    track, p = _read_size(d, 0)
    rel = struct.unpack(">h", d[p:p + 2])[0]
    flags = d[p + 2]
    if flags & 0x06:
        raise MkvError("laced blocks are not supported")
    key = bool(flags & 0x80) if key_hint is None else key_hint
    return Frame(track=track or 0, ts=cluster_tc + rel, key=key, data=bytes(d[p + 3:]), duration=duration)


def parse_mkv(buf: bytes) -> MkvDoc:
    """Parse one or more concatenated Matroska documents (tracks from the first)."""
    doc = MkvDoc()
    have_tracks = False
    pos = 0
    end = len(buf)
    cluster_tc = 0
    while pos < end:
        try:
            eid, p = _read_id(buf, pos)
            size, p = _read_size(buf, p)
        except MkvError:
            break
        if eid in (ID_SEGMENT, ID_CLUSTER):
            if eid == ID_CLUSTER:
                cluster_tc = 0
            pos = p                      # descend (sized or unknown size alike)
            continue
        if size is None:
            raise MkvError("unknown-size element 0x%X not supported" % eid)
        data = buf[p:p + size]
        pos = p + size
        if eid == ID_INFO:
            for cid, cd in _children(data, 0, len(data)):
                if cid == ID_TIMECODE_SCALE:
                    doc.timecode_scale = _uint(cd) or 1_000_000
        elif eid == ID_TRACKS:
            tracks = [_parse_track(cd) for cid, cd in _children(data, 0, len(data)) if cid == ID_TRACK_ENTRY]
            if not have_tracks:
                doc.tracks = tracks
                have_tracks = True
        elif eid == ID_TIMECODE:
            cluster_tc = _uint(data)
        elif eid == ID_SIMPLE_BLOCK:
            doc.frames.append(_parse_block(data, cluster_tc, None, None))
        elif eid == ID_BLOCK_GROUP:
            block = None
            dur = None
            ref = False
            for cid, cd in _children(data, 0, len(data)):
                if cid == ID_BLOCK:
                    block = cd
                elif cid == ID_BLOCK_DURATION:
                    dur = _uint(cd)
                elif cid == ID_REFERENCE_BLOCK:
                    ref = True
            if block is not None:
                doc.frames.append(_parse_block(block, cluster_tc, not ref, dur))
        # everything else (EBML header, Tags, Cues, SeekHead, Void, ...) is skipped
    return doc


def _enc_id(eid: int) -> bytes:
    n = (eid.bit_length() + 7) // 8
    return eid.to_bytes(n, "big")


def _enc_size(size: int) -> bytes:
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | size).to_bytes(length, "big")
    raise MkvError("element too large")


def _el(eid: int, payload: bytes) -> bytes:
    return _enc_id(eid) + _enc_size(len(payload)) + payload


def _el_uint(eid: int, v: int) -> bytes:
    n = max(1, (v.bit_length() + 7) // 8)
    return _el(eid, v.to_bytes(n, "big"))


def _el_str(eid: int, s: str) -> bytes:
    return _el(eid, s.encode("utf-8"))


def _el_float(eid: int, v: float) -> bytes:
    return _el(eid, struct.pack(">d", v))


def _track_entry(t: dict) -> bytes:
    codec_id = CANONICAL_CODEC_ID.get(t["codec_id"], t["codec_id"])
    is_video = t.get("type") == "video"
    p = _el_uint(ID_TRACK_NUMBER, t["number"])
    p += _el_uint(ID_TRACK_UID, t.get("uid") or t["number"])
    p += _el_uint(ID_TRACK_TYPE, 1 if is_video else 2)
    p += _el_str(ID_CODEC_ID, codec_id)
    if t.get("codec_private"):
        p += _el(ID_CODEC_PRIVATE, t["codec_private"])
    if t.get("default_duration_ns"):
        p += _el_uint(ID_DEFAULT_DURATION, t["default_duration_ns"])
    if is_video:
        v = b""
        if t.get("width"):
            v += _el_uint(ID_PIXEL_WIDTH, int(t["width"]))
        if t.get("height"):
            v += _el_uint(ID_PIXEL_HEIGHT, int(t["height"]))
        p += _el(ID_VIDEO, v)
    else:
        a = _el_float(ID_SAMPLING_FREQ, float(t.get("sampling_frequency") or 8000))
        a += _el_uint(ID_CHANNELS, int(t.get("channels") or 1))
        if t.get("bit_depth"):
            a += _el_uint(ID_BIT_DEPTH, int(t["bit_depth"]))
        p += _el(ID_AUDIO, a)
    return _el(ID_TRACK_ENTRY, p)


def write_mkv(out, tracks: list[dict], timed_frames, timecode_scale: int = 1_000_000) -> None:
    """Write a clean Matroska document.

    ``timed_frames`` yields (ts_ticks, Frame) in decode order with ts on the output timeline
    (ticks of ``timecode_scale``); a new Cluster starts at every video keyframe and whenever the
    16-bit relative timecode would overflow.
    """
    ebml = (_el_uint(0x4286, 1) + _el_uint(0x42F7, 1) + _el_uint(0x42F2, 4) + _el_uint(0x42F3, 8)
            + _el_str(0x4282, "matroska") + _el_uint(0x4287, 4) + _el_uint(0x4285, 2))
    out.write(_el(ID_EBML, ebml))
    out.write(_enc_id(ID_SEGMENT) + b"\x01\xFF\xFF\xFF\xFF\xFF\xFF\xFF")   # unknown size
    info = _el_uint(ID_TIMECODE_SCALE, timecode_scale) + _el_str(0x4D80, "kvs-local") + _el_str(0x5741, "kvs-local")
    out.write(_el(ID_INFO, info))
    out.write(_el(ID_TRACKS, b"".join(_track_entry(t) for t in tracks)))
    video_tracks = {t["number"] for t in tracks if t.get("type") == "video"}
    cluster: list[bytes] = []
    cluster_tc = None

    def flush():
        if cluster_tc is not None and cluster:
            out.write(_el(ID_CLUSTER, _el_uint(ID_TIMECODE, cluster_tc) + b"".join(cluster)))

    for ts, f in timed_frames:
        rel = None if cluster_tc is None else ts - cluster_tc
        if (cluster_tc is None or (f.key and f.track in video_tracks)
                or rel is None or rel < -32768 or rel > 32767):
            flush()
            cluster = []
            cluster_tc = max(0, ts)
            rel = ts - cluster_tc
            if rel < -32768:
                raise MkvError("frame timestamp too far before its cluster")
        if f.duration:
            body = _enc_size(f.track) + struct.pack(">hB", rel, 0) + f.data
            cluster.append(_el(ID_BLOCK_GROUP, _el(ID_BLOCK, body) + _el_uint(ID_BLOCK_DURATION, f.duration)
                               + (b"" if f.key else _el(ID_REFERENCE_BLOCK, b"\xff"))))
        else:
            body = _enc_size(f.track) + struct.pack(">hB", rel, 0x80 if f.key else 0) + f.data
            cluster.append(_el(ID_SIMPLE_BLOCK, body))
    flush()


# ----------------------------------------------------------------------------------------------
# Fragment timelines
# ----------------------------------------------------------------------------------------------

OUT_SCALE = 1_000_000   # output Matroska timecode scale: 1 ms


def local_zero(doc: MkvDoc) -> int:
    """The fragment's own time zero: its earliest frame timestamp (ticks of doc.timecode_scale)."""
    return min((f.ts for f in doc.frames), default=0)


def _to_out_ticks(doc: MkvDoc, ticks: int) -> int:
    return round(ticks * doc.timecode_scale / OUT_SCALE)


def frame_step_ms(doc: MkvDoc) -> int:
    """Typical video frame spacing in ms (median of pts differences), at least 1."""
    vt = {t["number"] for t in doc.tracks if t.get("type") == "video"}
    pts = sorted(_to_out_ticks(doc, f.ts) for f in doc.frames if f.track in vt)
    diffs = sorted(b - a for a, b in zip(pts, pts[1:]) if b > a)
    return diffs[len(diffs) // 2] if diffs else 33


def fragment_span_ms(doc: MkvDoc) -> int:
    """Media duration of one fragment in ms: last presentation time - first + one frame."""
    if not doc.frames:
        return 0
    z = local_zero(doc)
    last = max(_to_out_ticks(doc, f.ts - z) for f in doc.frames)
    return last + frame_step_ms(doc)


def video_extent_ms(doc: MkvDoc) -> tuple[int, int]:
    """(first video presentation time, end of the last video frame) in ms from the fragment's zero."""
    vt = {t["number"] for t in doc.tracks if t.get("type") == "video"}
    z = local_zero(doc)
    pts = [_to_out_ticks(doc, f.ts - z) for f in doc.frames if f.track in vt]
    if not pts:
        return 0, fragment_span_ms(doc)
    return min(pts), max(pts) + frame_step_ms(doc)


def timed_frames(parts: list[tuple[int, MkvDoc]]):
    """Yield (out_ts_ms, Frame) for [(offset_ms, doc), ...]: each fragment's frames re-based so that
    the fragment's time zero lies at offset_ms.  If a fragment would overlap the previous one on
    some track, it is pushed forward just enough, so every track stays monotonic."""
    prev_max: dict[int, int] = {}
    for offset, doc in parts:
        z = local_zero(doc)
        first: dict[int, int] = {}
        for f in doc.frames:
            r = _to_out_ticks(doc, f.ts - z)
            if f.track not in first or r < first[f.track]:
                first[f.track] = r
        push = max((prev_max[t] + 1 - (offset + r) for t, r in first.items() if t in prev_max), default=0)
        if push > 0:
            offset += push
        for f in doc.frames:
            ts = offset + _to_out_ticks(doc, f.ts - z)
            if ts > prev_max.get(f.track, -1 << 62):
                prev_max[f.track] = ts
            yield ts, f


def write_merged_mkv(path: str, parts: list[tuple[int, MkvDoc]], tracks: list[dict]) -> None:
    with open(path, "wb") as out:
        write_mkv(out, tracks, timed_frames(parts), OUT_SCALE)


# ----------------------------------------------------------------------------------------------
# ISO BMFF helpers
# ----------------------------------------------------------------------------------------------

def iter_boxes(buf: bytes, start: int = 0, end: int | None = None):
    """Yield (type, box_start, header_len, box_end)."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack(">I4s", buf[pos:pos + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", buf[pos + 8:pos + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr or pos + size > end:
            break
        yield typ.decode("latin-1"), pos, hdr, pos + size
        pos += size


def split_fmp4(buf: bytes) -> tuple[bytes, bytes]:
    """(init part = everything before the first moof, media part = moof/mdat boxes)."""
    for typ, s, h, e in iter_boxes(buf):
        if typ in ("moof", "styp", "sidx"):
            init = buf[:s]
            media = b"".join(buf[s2:e2] for t2, s2, h2, e2 in iter_boxes(buf, s) if t2 in ("moof", "mdat"))
            return init, media
    return buf, b""


def mdhd_timescale(init: bytes) -> int:
    """Timescale of the (single) track in an init segment."""
    def find(buf, start, end, path):
        for typ, s, h, e in iter_boxes(buf, start, end):
            if typ == path[0]:
                if len(path) == 1:
                    return s + h, e
                r = find(buf, s + h, e, path[1:])
                if r:
                    return r
        return None
    r = find(init, 0, len(init), ["moov", "trak", "mdia", "mdhd"])
    if not r:
        raise ValueError("no mdhd")
    s, _ = r
    version = init[s]
    if version == 1:
        return struct.unpack(">I", init[s + 20:s + 24])[0]
    return struct.unpack(">I", init[s + 12:s + 16])[0]


def shift_tfdt(media: bytes, delta: int) -> bytes:
    """Add ``delta`` (track timescale units) to every tfdt in a moof/mdat sequence."""
    out = bytearray(media)
    for typ, s, h, e in iter_boxes(out):
        if typ != "moof":
            continue
        for t2, s2, h2, e2 in iter_boxes(out, s + h, e):
            if t2 != "traf":
                continue
            for t3, s3, h3, e3 in iter_boxes(out, s2 + h2, e2):
                if t3 != "tfdt":
                    continue
                p = s3 + h3
                if out[p] == 1:
                    v = struct.unpack(">Q", out[p + 4:p + 12])[0] + delta
                    if v < 0:
                        raise ValueError("negative tfdt")
                    out[p + 4:p + 12] = struct.pack(">Q", v)
                else:
                    v = struct.unpack(">I", out[p + 4:p + 8])[0] + delta
                    if not 0 <= v < 2 ** 32:
                        raise ValueError("tfdt out of range for version 0")
                    out[p + 4:p + 8] = struct.pack(">I", v)
    return bytes(out)


def fmp4_duration(media: bytes, default_duration: int = 0) -> int:
    """Sum of sample durations of all truns (timescale units)."""
    total = 0
    for typ, s, h, e in iter_boxes(media):
        if typ != "moof":
            continue
        for t2, s2, h2, e2 in iter_boxes(media, s + h, e):
            if t2 != "traf":
                continue
            dflt = default_duration
            for t3, s3, h3, e3 in iter_boxes(media, s2 + h2, e2):
                p = s3 + h3
                flags = int.from_bytes(media[p + 1:p + 4], "big")
                if t3 == "tfhd":
                    q = p + 8
                    if flags & 0x1:
                        q += 8
                    if flags & 0x2:
                        q += 4
                    if flags & 0x8:
                        dflt = struct.unpack(">I", media[q:q + 4])[0]
                elif t3 == "trun":
                    n = struct.unpack(">I", media[p + 4:p + 8])[0]
                    q = p + 8
                    if flags & 0x1:
                        q += 4
                    if flags & 0x4:
                        q += 4
                    per = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
                    for i in range(n):
                        if flags & 0x100:
                            total += struct.unpack(">I", media[q:q + 4])[0]
                        else:
                            total += dflt
                        q += per
    return total


def first_sample_cts(media: bytes) -> int:
    """Composition offset of the first sample of the first trun (0 if none)."""
    for typ, s, h, e in iter_boxes(media):
        if typ != "moof":
            continue
        for t2, s2, h2, e2 in iter_boxes(media, s + h, e):
            if t2 != "traf":
                continue
            for t3, s3, h3, e3 in iter_boxes(media, s2 + h2, e2):
                if t3 != "trun":
                    continue
                p = s3 + h3
                version = media[p]
                flags = int.from_bytes(media[p + 1:p + 4], "big")
                if not flags & 0x800:
                    return 0
                q = p + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
                q += 4 * sum(1 for bit in (0x100, 0x200, 0x400) if flags & bit)
                fmt = ">i" if version == 1 else ">I"
                return struct.unpack(fmt, media[q:q + 4])[0]
    return 0


def first_tfdt(media: bytes) -> int:
    for typ, s, h, e in iter_boxes(media):
        if typ != "moof":
            continue
        p = media.find(b"tfdt", s, e)
        if p < 0:
            return 0
        if media[p + 4] == 1:
            return struct.unpack(">Q", media[p + 8:p + 16])[0]
        return struct.unpack(">I", media[p + 8:p + 12])[0]
    return 0


# ----------------------------------------------------------------------------------------------
# ffmpeg
# ----------------------------------------------------------------------------------------------

class MediaError(Exception):
    pass


def run_ffmpeg(args: list[str], timeout: float = 120, stdin: bytes | None = None) -> bytes:
    cmd = [FFMPEG, "-hide_banner", "-nostdin" if stdin is None else "-hide_banner",
           "-loglevel", "error", "-y"] + args
    try:
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise MediaError("ffmpeg timed out") from e
    if p.returncode != 0:
        raise MediaError("ffmpeg failed (%d): %s" % (p.returncode, p.stderr.decode("utf-8", "replace")[-2000:]))
    return p.stdout


def normalized_fragment_mkv(doc: MkvDoc) -> bytes:
    """One fragment as a clean Matroska document with time zero at the fragment start."""
    import io
    bio = io.BytesIO()
    write_mkv(bio, doc.tracks, timed_frames([(0, doc)]), OUT_SCALE)
    return bio.getvalue()


def make_clip(parts: list[tuple[int, MkvDoc]], tracks: list[dict], workdir: str) -> str:
    """Remux fragments into one classic MP4 file; returns its path (caller deletes it).

    ``parts`` is [(offset_ms, doc)] in output order; video and AAC are copied, G.711 audio
    (which MP4 cannot carry as such) is converted to AAC.
    """
    os.makedirs(workdir, exist_ok=True)
    fd, mkv_path = tempfile.mkstemp(suffix=".mkv", dir=workdir)
    os.close(fd)
    mp4_path = mkv_path[:-4] + ".mp4"
    try:
        write_merged_mkv(mkv_path, parts, tracks)
        args = ["-f", "matroska", "-i", mkv_path, "-map", "0:v:0", "-c:v", "copy"]
        audio = [t for t in tracks if t.get("type") == "audio"]
        if audio:
            args += ["-map", "0:a:0"]
            args += ["-c:a", "aac"] if codec_kind(audio[0].get("codec_id")) == "g711" else ["-c:a", "copy"]
        if codec_kind(tracks[0].get("codec_id")) == "h265":
            args += ["-tag:v", "hvc1"]
        args += ["-movflags", "+faststart", "-f", "mp4", mp4_path]
        run_ffmpeg(args, timeout=300)
        return mp4_path
    except BaseException:
        if os.path.exists(mp4_path):
            os.unlink(mp4_path)
        raise
    finally:
        os.unlink(mkv_path)


@dataclass
class Fmp4Part:
    init: bytes          # ftyp + moov (no samples)
    media: bytes         # moof + mdat with the muxer's own tfdt
    timescale: int
    duration: int        # sum of sample durations (timescale units)
    rel0: int            # first sample's presentation time from the fragment's zero (timescale units)
    cts0: int            # first sample's composition offset
    tfdt0: int           # muxer's first tfdt

    def placed(self, start_ticks: int) -> bytes:
        """The media part with decode times such that the fragment's zero lies at start_ticks."""
        want = start_ticks + self.rel0 - self.cts0
        return shift_tfdt(self.media, want - self.tfdt0)


def make_fmp4(doc: MkvDoc, track_number: int) -> bytes:
    """ffmpeg: one fragment, one track, as fragmented MP4 (ftyp, moov, moof, mdat)."""
    track = next((t for t in doc.tracks if t["number"] == track_number), None)
    if track is None:
        raise MediaError("no track %d" % track_number)
    src = normalized_fragment_mkv(doc)
    video = track.get("type") == "video"
    index = sum(1 for t in doc.tracks if t.get("type") == track.get("type") and t["number"] < track_number)
    args = ["-f", "matroska", "-i", "pipe:0", "-map", "0:%s:%d" % ("v" if video else "a", index)]
    if video:
        args += ["-c:v", "copy", "-video_track_timescale", "90000"]
        if codec_kind(track.get("codec_id")) == "h265":
            args += ["-tag:v", "hvc1"]
    elif codec_kind(track.get("codec_id")) == "g711":
        args += ["-c:a", "aac"]
    else:
        args += ["-c:a", "copy"]
    args += ["-movflags", "empty_moov+default_base_moof+frag_custom", "-f", "mp4", "pipe:1"]
    return run_ffmpeg(args, stdin=src)


def fmp4_part(doc: MkvDoc, track_number: int, raw: bytes) -> Fmp4Part:
    init, mediab = split_fmp4(raw)
    ts = mdhd_timescale(init)
    first = next((f for f in doc.frames if f.track == track_number), None)
    rel0_ms = _to_out_ticks(doc, first.ts - local_zero(doc)) if first else 0
    return Fmp4Part(init=init, media=mediab, timescale=ts, duration=fmp4_duration(mediab),
                    rel0=round(rel0_ms * ts / 1000), cts0=first_sample_cts(mediab), tfdt0=first_tfdt(mediab))


def make_ts(doc: MkvDoc, start_s: float) -> bytes:
    """ffmpeg: one fragment, all tracks, as an MPEG-TS segment whose timestamps start at start_s."""
    src = normalized_fragment_mkv(doc)
    args = ["-copyts", "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0", "-c:v", "copy"]
    vkind = codec_kind(doc.tracks[0].get("codec_id")) if doc.tracks else None
    args += ["-bsf:v", "hevc_mp4toannexb" if vkind == "h265" else "h264_mp4toannexb"]
    audio = [t for t in doc.tracks if t.get("type") == "audio"]
    if audio:
        args += ["-map", "0:a:0", "-c:a", "copy"]
    args += ["-output_ts_offset", "%.3f" % start_s, "-muxdelay", "0", "-muxpreload", "0",
             "-f", "mpegts", "pipe:1"]
    return run_ffmpeg(args, stdin=src)


def extract_image(doc: MkvDoc, offset_s: float, fmt: str, width: int | None, height: int | None,
                  jpeg_quality: int = 80) -> bytes:
    """ffmpeg: the video frame shown at offset_s into the fragment, as JPEG or PNG bytes."""
    src = normalized_fragment_mkv(doc)
    args = ["-f", "matroska", "-i", "pipe:0", "-ss", "%.3f" % max(0.0, offset_s), "-map", "0:v:0",
            "-frames:v", "1"]
    if width or height:
        args += ["-vf", "scale=%d:%d" % (width or -2, height or -2)]
    if fmt == "PNG":
        args += ["-c:v", "png", "-f", "image2pipe", "pipe:1"]
    else:
        q = round(2 + (100 - max(1, min(100, jpeg_quality))) * 29 / 99)
        args += ["-c:v", "mjpeg", "-q:v", str(q), "-pix_fmt", "yuvj420p", "-f", "image2pipe", "pipe:1"]
    out = run_ffmpeg(args, stdin=src)
    if not out and offset_s > 0:
        # offset past the last frame: take the last frame of the fragment
        return extract_image(doc, max(0.0, offset_s - 0.5), fmt, width, height, jpeg_quality)
    return out


# ----------------------------------------------------------------------------------------------
# Cache of per-fragment fMP4 conversions (data_dir/media-cache)
# ----------------------------------------------------------------------------------------------

class FragmentCache:
    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            lk = self._locks.get(key)
            if lk is None:
                lk = self._locks[key] = threading.Lock()
            return lk

    def path(self, stream_key: str, name: str) -> str:
        d = os.path.join(self.root, hashlib.sha256(stream_key.encode()).hexdigest()[:16])
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)

    def get_or_make(self, stream_key: str, name: str, make) -> bytes:
        p = self.path(stream_key, name)
        with self._lock(p):
            try:
                with open(p, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                pass
            data = make()
            tmp = p + ".tmp%d" % threading.get_ident()
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, p)
            return data


def _find_box(buf: bytes, start: int, end: int, path: list[str]):
    for typ, s, h, e in iter_boxes(buf, start, end):
        if typ == path[0]:
            if len(path) == 1:
                return s, h, e
            r = _find_box(buf, s + h, e, path[1:])
            if r:
                return r
    return None


def visual_size(init: bytes) -> tuple[int, int] | None:
    """(width, height) of the first visual sample entry (avc1/hvc1/...) of an init segment; these come
    from ffmpeg's parsing of the SPS, so they are right even when the producer's track header is not."""
    r = _find_box(init, 0, len(init), ["moov", "trak", "mdia", "minf", "stbl", "stsd"])
    if not r:
        return None
    s, h, e = r
    entry = s + h + 8            # full box header (4) + entry_count (4)
    if entry + 36 > e:
        return None
    w, hgt = struct.unpack(">HH", init[entry + 32:entry + 36])
    return (w, hgt) if w and hgt else None


def fmp4_sample_count(media: bytes) -> int:
    n = 0
    for typ, s, h, e in iter_boxes(media):
        if typ != "moof":
            continue
        for t2, s2, h2, e2 in iter_boxes(media, s + h, e):
            if t2 != "traf":
                continue
            for t3, s3, h3, e3 in iter_boxes(media, s2 + h2, e2):
                if t3 == "trun":
                    n += struct.unpack(">I", media[s3 + h3 + 4:s3 + h3 + 8])[0]
    return n
