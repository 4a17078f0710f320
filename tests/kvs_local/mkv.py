"""Minimal EBML/Matroska toolkit for kvs-local (stdlib only).

* vint / element encoding and decoding,
* ``walk()``: a tolerant recursive walk over a byte string (used by tests and tools),
* ``StreamReader`` + ``PutMediaParser``: the incremental parser behind PutMedia,
* helpers that build the KVS output documents (EBML + unknown-size Segment + producer header
  + KVS Tags with 4-byte size fields + Cluster),
* ``ProducerMkvWriter``: a producer-SDK-style (PIC ``MkvStatics.c`` layout) MKV generator.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

# ---------------------------------------------------------------- element ids
EBML = 0x1A45DFA3
SEGMENT = 0x18538067
SEEKHEAD = 0x114D9B74
INFO = 0x1549A966
TRACKS = 0x1654AE6B
TAGS = 0x1254C367
CLUSTER = 0x1F43B675
CUES = 0x1C53BB6B
CHAPTERS = 0x1043A770
ATTACHMENTS = 0x1941A469
VOID = 0xEC
CRC32 = 0xBF
TAG = 0x7373
TARGETS = 0x63C0
SIMPLETAG = 0x67C8
TAGNAME = 0x45A3
TAGSTRING = 0x4487
TIMECODE = 0xE7
POSITION = 0xA7
PREVSIZE = 0xAB
SIMPLEBLOCK = 0xA3
BLOCKGROUP = 0xA0
BLOCK = 0xA1
TIMECODESCALE = 0x2AD7B1
TRACKENTRY = 0xAE
TRACKNUMBER = 0xD7
TRACKUID = 0x73C5
TRACKTYPE = 0x83
CODECID = 0x86
CODECPRIVATE = 0x63A2
NAME = 0x536E
VIDEO = 0xE0
PIXELWIDTH = 0xB0
PIXELHEIGHT = 0xBA
AUDIO = 0xE1
SAMPLINGFREQ = 0xB5
CHANNELS = 0x9F
BITDEPTH = 0x6264
DEFAULTDURATION = 0x23E383

LEVEL1 = {SEEKHEAD, INFO, TRACKS, TAGS, CLUSTER, CUES, CHAPTERS, ATTACHMENTS}
# master elements that walk() descends into
MASTERS = {EBML, SEGMENT, SEEKHEAD, INFO, TRACKS, TAGS, CLUSTER, CUES, CHAPTERS, ATTACHMENTS,
           TRACKENTRY, VIDEO, AUDIO, TAG, TARGETS, SIMPLETAG, BLOCKGROUP, 0x4DBB, 0xBB, 0xB7}

UNKNOWN_SIZE_8 = b"\x01\xff\xff\xff\xff\xff\xff\xff"

NAMES = {EBML: "EBML", SEGMENT: "Segment", SEEKHEAD: "SeekHead", INFO: "Info", TRACKS: "Tracks",
         TAGS: "Tags", CLUSTER: "Cluster", CUES: "Cues", VOID: "Void", CRC32: "CRC-32", TAG: "Tag",
         TARGETS: "Targets", SIMPLETAG: "SimpleTag", TAGNAME: "TagName", TAGSTRING: "TagString",
         TIMECODE: "Timecode", POSITION: "Position", SIMPLEBLOCK: "SimpleBlock", BLOCKGROUP: "BlockGroup",
         BLOCK: "Block", TIMECODESCALE: "TimecodeScale", TRACKENTRY: "TrackEntry", TRACKNUMBER: "TrackNumber",
         CODECID: "CodecID", CODECPRIVATE: "CodecPrivate", VIDEO: "Video", AUDIO: "Audio"}


class MkvError(Exception):
    """Malformed Matroska data (PutMedia answers with ErrorId 4006)."""


# ---------------------------------------------------------------- vints
def vint_len(first: int) -> int:
    for i in range(8):
        if first & (0x80 >> i):
            return i + 1
    raise MkvError("invalid vint (first byte 0)")


def read_id(buf, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise MkvError("truncated id")
    n = vint_len(buf[pos])
    if n > 4 or pos + n > len(buf):
        raise MkvError("bad element id")
    return int.from_bytes(buf[pos:pos + n], "big"), n


def read_size(buf, pos: int) -> tuple[int | None, int]:
    """Returns (size or None for unknown, width)."""
    if pos >= len(buf):
        raise MkvError("truncated size")
    n = vint_len(buf[pos])
    if pos + n > len(buf):
        raise MkvError("truncated size")
    v = int.from_bytes(buf[pos:pos + n], "big") & ((1 << (7 * n)) - 1)
    if v == (1 << (7 * n)) - 1:
        return None, n
    return v, n


def encode_id(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def encode_size(n: int, width: int | None = None) -> bytes:
    if width is None:
        width = 1
        while n >= (1 << (7 * width)) - 1:
            width += 1
    if n >= (1 << (7 * width)) - 1:
        raise ValueError("size does not fit")
    return ((1 << (7 * width)) | n).to_bytes(width, "big")


def element(eid: int, payload: bytes, width: int | None = None) -> bytes:
    return encode_id(eid) + encode_size(len(payload), width) + payload


def uint_el(eid: int, v: int, nbytes: int | None = None, width: int | None = None) -> bytes:
    if nbytes is None:
        nbytes = max(1, (v.bit_length() + 7) // 8)
    return element(eid, v.to_bytes(nbytes, "big"), width)


def read_uint(b: bytes) -> int:
    return int.from_bytes(b, "big") if b else 0


def read_float(b: bytes) -> float:
    if len(b) == 4:
        return struct.unpack(">f", b)[0]
    if len(b) == 8:
        return struct.unpack(">d", b)[0]
    return 0.0


# ---------------------------------------------------------------- tolerant walk
@dataclass
class El:
    id: int
    offset: int          # offset of the id
    header_len: int
    size: int | None     # None = unknown
    size_width: int
    data_offset: int
    end: int
    depth: int
    children: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return NAMES.get(self.id, f"0x{self.id:X}")


def walk(buf: bytes, start: int = 0, end: int | None = None, depth: int = 0,
         parent_id: int | None = None, parent_unknown: bool = False) -> list[El]:
    """Walks EBML elements in buf[start:end]. An unknown-size master ends at the next element that
    cannot be its child: a Level-1 id (unless the parent is the Segment), an EBML header or a Segment."""
    out: list[El] = []
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        try:
            eid, il = read_id(buf, pos)
            size, sw = read_size(buf, pos + il)
        except MkvError:
            break
        if parent_unknown and (eid in (EBML, SEGMENT) or (parent_id != SEGMENT and eid in LEVEL1)):
            break
        doff = pos + il + sw
        if size is None:
            if eid not in MASTERS:
                break
            el = El(eid, pos, il + sw, None, sw, doff, end, depth)
            el.children = walk(buf, doff, end, depth + 1, eid, True)
            el.end = el.children[-1].end if el.children else doff
        else:
            eend = min(doff + size, end)
            el = El(eid, pos, il + sw, size, sw, doff, eend, depth)
            if eid in MASTERS:
                el.children = walk(buf, doff, eend, depth + 1, eid, False)
        out.append(el)
        if el.end <= pos:
            break
        pos = el.end
    return out


def walk_documents(buf: bytes) -> list[El]:
    """Top-level walk of a concatenation of documents: EBML header, Segment, EBML header, ..."""
    return walk(buf, 0, len(buf), 0, None, False)


def simple_tags(tags_el: El, buf: bytes) -> list[tuple[str, str]]:
    res = []
    for tag in tags_el.children:
        if tag.id != TAG:
            continue
        for st in tag.children:
            if st.id != SIMPLETAG:
                continue
            name = val = None
            for c in st.children:
                if c.id == TAGNAME:
                    name = buf[c.data_offset:c.end].decode("utf-8", "replace").rstrip("\0")
                elif c.id == TAGSTRING:
                    val = buf[c.data_offset:c.end].decode("utf-8", "replace").rstrip("\0")
            res.append((name, val))
    return res


# ---------------------------------------------------------------- KVS output documents
def kvs_tags(pairs: list[tuple[str, str]]) -> bytes:
    """A Tags element as KVS writes it: one Tag, no Targets, SimpleTags; every size field 4 bytes."""
    sts = b"".join(
        element(SIMPLETAG, element(TAGNAME, n.encode(), 4) + element(TAGSTRING, v.encode(), 4), 4)
        for n, v in pairs)
    return element(TAGS, element(TAG, sts, 4), 4)


def fmt_ts(ts: float) -> str:
    return f"{ts:.3f}"


def fragment_document(ebml_header: bytes, header_children: bytes, kvs_tag_pairs, body: bytes,
                      trailer_pairs=None) -> bytes:
    """EBML header + Segment(8-byte unknown size) + producer header elements + KVS Tags + body."""
    out = [ebml_header, encode_id(SEGMENT), UNKNOWN_SIZE_8, header_children, kvs_tags(kvs_tag_pairs), body]
    if trailer_pairs:
        out.append(kvs_tags(trailer_pairs))
    return b"".join(out)


def rewrite_cluster_timecode(cluster: bytes, tc: int) -> bytes:
    """Returns the cluster with its Timecode replaced (8-byte value). Fast path: 8-byte Timecode
    already present is patched in place."""
    eid, il = read_id(cluster, 0)
    size, sw = read_size(cluster, il)
    doff = il + sw
    pos = doff
    end = len(cluster) if size is None else doff + size
    while pos < end:
        cid, cil = read_id(cluster, pos)
        csz, csw = read_size(cluster, pos + cil)
        if cid == TIMECODE:
            vstart = pos + cil + csw
            if csz == 8:
                return cluster[:vstart] + tc.to_bytes(8, "big") + cluster[vstart + 8:]
            new_child = element(TIMECODE, tc.to_bytes(8, "big"))
            delta = len(new_child) - (cil + csw + csz)
            rest = cluster[pos + cil + csw + csz:]
            if size is None:
                head = cluster[:doff]
            else:
                ns = size + delta
                head = encode_id(eid) + encode_size(ns, sw if ns < (1 << (7 * sw)) - 1 else 8)
            return head + cluster[doff:pos] + new_child + rest
        if csz is None:
            break
        pos += cil + csw + csz
    raise MkvError("cluster without Timecode")


def normalize_cluster(cluster: bytes) -> bytes:
    """Re-encodes a cluster so that its Timecode is 8 bytes wide and its size field 8 bytes wide
    (when known), so that later timecode rewrites are in-place patches."""
    eid, il = read_id(cluster, 0)
    size, sw = read_size(cluster, il)
    doff = il + sw
    body = cluster[doff:] if size is None else cluster[doff:doff + size]
    parts = []
    pos = 0
    while pos < len(body):
        cid, cil = read_id(body, pos)
        csz, csw = read_size(body, pos + cil)
        if csz is None:
            raise MkvError("unknown-size child in cluster")
        raw = body[pos:pos + cil + csw + csz]
        if cid == TIMECODE:
            raw = element(TIMECODE, read_uint(body[pos + cil + csw:pos + cil + csw + csz]).to_bytes(8, "big"))
        elif cid == CRC32:
            raw = b""  # the CRC would no longer match
        parts.append(raw)
        pos += cil + csw + csz
    nb = b"".join(parts)
    if size is None:
        return cluster[:doff] + nb
    return encode_id(CLUSTER) + encode_size(len(nb), 8) + nb


# ---------------------------------------------------------------- header / cluster parsing
@dataclass
class TrackInfo:
    number: int
    type: str
    codec_id: str
    codec_private: bytes
    width: int | None = None
    height: int | None = None
    sampling_frequency: float | None = None
    channels: int | None = None

    def as_dict(self) -> dict:
        return {"number": self.number, "type": self.type, "codec_id": self.codec_id,
                "codec_private": self.codec_private, "width": self.width, "height": self.height,
                "sampling_frequency": self.sampling_frequency, "channels": self.channels}


def parse_header_children(buf: bytes) -> tuple[int, list[TrackInfo]]:
    """Parses segment-level header elements; returns (timecode_scale_ns, tracks)."""
    scale = 1_000_000
    tracks: list[TrackInfo] = []
    for el in walk(buf, 0, len(buf), 1, SEGMENT, False):
        if el.id == INFO:
            for c in el.children:
                if c.id == TIMECODESCALE:
                    scale = read_uint(buf[c.data_offset:c.end]) or 1_000_000
        elif el.id == TRACKS:
            for te in el.children:
                if te.id != TRACKENTRY:
                    continue
                t = TrackInfo(0, "other", "", b"")
                for c in te.children:
                    d = buf[c.data_offset:c.end]
                    if c.id == TRACKNUMBER:
                        t.number = read_uint(d)
                    elif c.id == TRACKTYPE:
                        t.type = {1: "video", 2: "audio"}.get(read_uint(d), "other")
                    elif c.id == CODECID:
                        t.codec_id = d.decode("ascii", "replace").rstrip("\0 ")
                    elif c.id == CODECPRIVATE:
                        t.codec_private = bytes(d)
                    elif c.id == VIDEO:
                        for v in c.children:
                            dv = buf[v.data_offset:v.end]
                            if v.id == PIXELWIDTH:
                                t.width = read_uint(dv)
                            elif v.id == PIXELHEIGHT:
                                t.height = read_uint(dv)
                    elif c.id == AUDIO:
                        for a in c.children:
                            da = buf[a.data_offset:a.end]
                            if a.id == SAMPLINGFREQ:
                                t.sampling_frequency = read_float(da)
                            elif a.id == CHANNELS:
                                t.channels = read_uint(da)
                tracks.append(t)
    return scale, tracks


@dataclass
class ClusterInfo:
    timecode: int | None = None
    blocks: list = field(default_factory=list)  # (track, rel_tc, keyframe)


def parse_cluster_body(body: bytes) -> ClusterInfo:
    ci = ClusterInfo()
    pos = 0
    n = len(body)
    while pos < n:
        cid, cil = read_id(body, pos)
        csz, csw = read_size(body, pos + cil)
        if csz is None:
            raise MkvError("unknown-size element inside a cluster")
        d0 = pos + cil + csw
        d1 = d0 + csz
        if d1 > n:
            raise MkvError("cluster child overruns the cluster")
        if cid == TIMECODE:
            ci.timecode = read_uint(body[d0:d1])
        elif cid == SIMPLEBLOCK:
            ci.blocks.append(_block(body, d0, d1, True))
        elif cid == BLOCKGROUP:
            p = d0
            while p < d1:
                gid, gil = read_id(body, p)
                gsz, gsw = read_size(body, p + gil)
                if gsz is None:
                    raise MkvError("bad BlockGroup")
                if gid == BLOCK:
                    ci.blocks.append(_block(body, p + gil + gsw, p + gil + gsw + gsz, False))
                p += gil + gsw + gsz
        pos = d1
    if ci.timecode is None:
        raise MkvError("cluster without Timecode")
    return ci


def _block(buf, d0, d1, simple):
    track, tl = read_size(buf, d0)
    if track is None or d0 + tl + 3 > d1:
        raise MkvError("bad block header")
    rel = struct.unpack(">h", bytes(buf[d0 + tl:d0 + tl + 2]))[0]
    flags = buf[d0 + tl + 2]
    return (track, rel, bool(flags & 0x80) if simple else False)


# ---------------------------------------------------------------- incremental reader
class StreamReader:
    """Buffered reader over a file-like object with read1/read; supports peek and exact reads."""

    def __init__(self, raw, on_data=None):
        self.raw = raw
        self.buf = bytearray()
        self.pos = 0
        self.consumed = 0
        self.eof = False
        self.on_data = on_data

    def _fill(self, n: int) -> bool:
        while len(self.buf) - self.pos < n and not self.eof:
            chunk = self.raw.read(max(65536, n))
            if not chunk:
                self.eof = True
                break
            if self.on_data:
                self.on_data(len(chunk))
            if self.pos > 1 << 20:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += chunk
        return len(self.buf) - self.pos >= n

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self.buf[self.pos:self.pos + n])

    def at_eof(self) -> bool:
        return not self._fill(1)

    def read(self, n: int) -> bytes:
        if not self._fill(n):
            raise MkvError("unexpected end of stream")
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        self.consumed += n
        return b

    def peek_header(self):
        """(id, size|None, header_len) of the next element, or None at EOF."""
        h = self.peek(12)
        if not h:
            return None
        eid, il = read_id(h, 0)
        size, sw = read_size(h, il)
        return eid, size, il + sw


# ---------------------------------------------------------------- producer-style writer (PIC layout)
def ebml_header_bytes(doctype: bytes = b"matroska") -> bytes:
    body = (uint_el(0x4286, 1) + uint_el(0x42F7, 1) + uint_el(0x42F2, 4) + uint_el(0x42F3, 8)
            + element(0x4282, doctype) + uint_el(0x4287, 2) + uint_el(0x4285, 2))
    return element(EBML, body)


class ProducerMkvWriter:
    """Writes MKV the way the KVS producer SDK (PIC) does: unknown-size Segment and Clusters, Info with
    2-byte size, Tracks/TrackEntry with 4-byte sizes, Cluster Timecode 8 bytes + Position 0,
    SimpleBlocks with 8-byte sizes."""

    def __init__(self, tracks: list[dict], timecode_scale: int = 1_000_000, segment_uid: bytes = b"\x01" * 16):
        self.tracks = tracks
        self.scale = timecode_scale
        self.uid = segment_uid

    def header(self) -> bytes:
        info = (element(0x73A4, self.uid) + uint_el(TIMECODESCALE, self.scale, 8)
                + element(0x7BA9, b"Kinesis Video SDK") + element(0x4D80, b"Kinesis Video SDK")
                + element(0x5741, b"kvs-local"))
        entries = b""
        for t in self.tracks:
            e = uint_el(TRACKNUMBER, t["number"]) + uint_el(TRACKUID, t.get("uid", t["number"]), 8)
            e += uint_el(TRACKTYPE, 1 if t["type"] == "video" else 2)
            e += element(CODECID, t["codec_id"].encode()) + element(NAME, t.get("name", "kvs-local").encode())
            if t.get("codec_private"):
                e += element(CODECPRIVATE, t["codec_private"])
            if t["type"] == "video":
                e += element(VIDEO, uint_el(PIXELWIDTH, t.get("width", 640), 2) + uint_el(PIXELHEIGHT, t.get("height", 480), 2))
            else:
                e += element(AUDIO, element(SAMPLINGFREQ, struct.pack(">d", float(t.get("sampling_frequency", 44100))))
                             + uint_el(CHANNELS, t.get("channels", 2)))
            entries += element(TRACKENTRY, e, 4)
        return (ebml_header_bytes() + encode_id(SEGMENT) + b"\xff" + element(INFO, info, 2)
                + element(TRACKS, entries, 4))

    @staticmethod
    def cluster(timecode: int, frames: list[tuple[int, int, bool, bytes]]) -> bytes:
        """frames: (track_number, relative_timecode, keyframe, data)."""
        out = [encode_id(CLUSTER), b"\xff", uint_el(TIMECODE, timecode, 8), b"\xa7\x81\x00"]
        for track, rel, key, data in frames:
            payload = encode_size(track) + struct.pack(">h", rel) + bytes([0x80 if key else 0]) + data
            out.append(element(SIMPLEBLOCK, payload, 8))
        return b"".join(out)

    @staticmethod
    def tags(pairs: list[tuple[str, str]]) -> bytes:
        sts = b"".join(element(SIMPLETAG, element(TAGNAME, n.encode(), 8) + element(TAGSTRING, v.encode(), 8), 8)
                       for n, v in pairs)
        return element(TAGS, element(TAG, sts, 8), 8)


# ---------------------------------------------------------------- H.264 helpers (Annex-B -> AVCC)
def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes)."""
    nals = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt == -1 else nxt
        nal = data[start:end]
        if nxt != -1:
            nal = nal.rstrip(b"\x00")  # trailing zero of a 4-byte start code / trailing_zero_8bits
        if nal:
            nals.append(nal)
        pos = nxt
    return nals


def avcc_from_annexb(frames: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Returns (AVCDecoderConfigurationRecord, frames as 4-byte length-prefixed NALUs)."""
    sps = pps = None
    out = []
    for f in frames:
        parts = []
        for nal in split_annexb(f):
            t = nal[0] & 0x1F
            if t == 7 and sps is None:
                sps = nal
            elif t == 8 and pps is None:
                pps = nal
            parts.append(len(nal).to_bytes(4, "big") + nal)
        out.append(b"".join(parts))
    if sps is None or pps is None:
        raise ValueError("no SPS/PPS found")
    cpd = (bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps
           + b"\x01" + len(pps).to_bytes(2, "big") + pps)
    return cpd, out
