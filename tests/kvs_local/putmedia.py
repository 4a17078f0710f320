"""PutMedia ingest: incremental MKV parsing of a streamed (chunked) body, per-fragment rules, ACK lines."""
from __future__ import annotations

import json
import threading
import time

from . import mkv
from .mkv import MkvError

MAX_FRAGMENT_BYTES = 50 * 1024 * 1024
MAX_FRAGMENT_NS = 10_000_000_000
MAX_TRACKS = 3
MAX_BYTES_PER_S = 12_500_000   # documented ingest limits of one stream (kvs-api.md 3.1)
MAX_FRAGMENTS_PER_S = 5

ERROR_CODES = {
    4001: "MAX_FRAGMENT_SIZE",
    4002: "MAX_FRAGMENT_DURATION_REACHED",
    4004: "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
    4006: "INVALID_MKV_DATA",
    4010: "TRACK_NUMBER_MISMATCH",
    4011: "FRAMES_MISSING_FOR_TRACK",
    4012: "MORE_THAN_ALLOWED_TRACKS_FOUND",
    4008: "STREAM_NOT_ACTIVE",
}


class StreamGone(MkvError):
    """The stream was deleted while the PutMedia request was running (ACK 4008)."""

# last frame time (producer-absolute ns) per stream uid, shared by all connections of this process
_last_frame: dict[int, int] = {}
_last_lock = threading.Lock()


class ChunkedReader:
    """Decodes an HTTP/1.1 chunked request body from a buffered socket file."""

    def __init__(self, rfile):
        self.rfile = rfile
        self.left = 0
        self.done = False

    def read(self, n: int = 65536) -> bytes:
        if self.done:
            return b""
        if self.left == 0:
            line = self.rfile.readline(1024)
            if not line:
                self.done = True
                return b""
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise MkvError("bad chunk size line")
            if size == 0:
                while True:  # trailers
                    t = self.rfile.readline(1024)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                self.done = True
                return b""
            self.left = size
        data = self.rfile.read1(min(n, self.left)) if hasattr(self.rfile, "read1") else self.rfile.read(min(n, self.left))
        if not data:
            self.done = True
            return b""
        self.left -= len(data)
        if self.left == 0:
            self.rfile.readline(16)  # CRLF after the chunk
        return data


class LimitedReader:
    def __init__(self, rfile, length: int):
        self.rfile = rfile
        self.left = length

    def read(self, n: int = 65536) -> bytes:
        if self.left <= 0:
            return b""
        data = self.rfile.read1(min(n, self.left)) if hasattr(self.rfile, "read1") else self.rfile.read(min(n, self.left))
        self.left -= len(data)
        return data


class Ingest:
    def __init__(self, ctx, stream, tc_type: str, start_ts: float, send_ack, pace_fragment=None):
        self.ctx = ctx
        self.store = ctx.store
        self.stream = stream
        self.tc_type = tc_type
        self.start_ts = start_ts
        self.send = send_ack
        self.pace_fragment = pace_fragment or (lambda: None)
        self.header_id = None
        self.ebml = b""
        self.header_children = b""
        self.scale = 1_000_000
        self.tracks = []
        self.fragments = 0
        self.errors = 0
        self.last_data = time.monotonic()
        self.last_stored = None

    # -------------------------------------------------------------- acks
    def ack(self, event: str, number: str | None = None, tc: int | None = None, error_id: int | None = None):
        d = {"EventType": event}
        if tc is not None:
            d["FragmentTimecode"] = tc
        if number is not None:
            d["FragmentNumber"] = number
        if error_id is not None:
            d["ErrorCode"] = ERROR_CODES.get(error_id, "INTERNAL_ERROR")
            d["ErrorId"] = error_id
        self.send(d)

    # -------------------------------------------------------------- parsing
    def run(self, reader: mkv.StreamReader):
        pending = None
        number = None
        tc = None
        try:
            h = reader.peek_header()
            if h is None:
                return
            eid, size, hl = h
            if eid != mkv.EBML or size is None:
                raise MkvError("body does not start with an EBML header")
            self.ebml = reader.read(hl + size)
            h = reader.peek_header()
            if h is None or h[0] != mkv.SEGMENT:
                raise MkvError("expected a Segment")
            reader.read(h[2])
            children = bytearray()
            while True:
                h = reader.peek_header()
                if h is None:
                    break
                eid, size, hl = h
                if eid in (mkv.EBML, mkv.SEGMENT):
                    raise MkvError("more than one Segment in a PutMedia request")
                if eid == mkv.CLUSTER:
                    if self.header_id is None:
                        self.commit_header(bytes(children))
                    number = self.store.next_fragment_number()
                    tc = None
                    pending = self.read_cluster(reader, size, hl, number)
                    tc = pending["tc"]
                    # the fragment is complete when its Cluster is: known size read, or unknown size ended by
                    # the next top-level element / end of body
                    self.last_stored = number if self.finish(pending) else None
                    pending = None
                    number = tc = None
                    continue
                if size is None:
                    raise MkvError(f"unknown-size element 0x{eid:X} outside a Cluster")
                data = reader.read(hl + size)
                if self.header_id is None:
                    children += data
                elif self.last_stored is not None:
                    # elements between Clusters (producer Tags, Cues) stay with the fragment before them
                    self.store.extend_fragment(self.stream, self.last_stored, data)
        except StreamGone:
            raise
        except MkvError as e:
            self.ctx.log.info("PutMedia %s: invalid MKV: %s", self.stream.name, e)
            self.errors += 1
            if number is None:
                number = self.store.next_fragment_number()
            self.ack("ERROR", number, tc, 4006)
            raise

    def commit_header(self, children: bytes):
        self.header_children = children
        self.scale, tracks = mkv.parse_header_children(children)
        if not tracks:
            raise MkvError("no Tracks element before the first Cluster")
        self.tracks = [t.as_dict() for t in tracks]
        self.header_id = self.store.add_header(self.stream, self.ebml, children, self.scale, self.tracks)

    def read_cluster(self, reader, size, hl, number) -> dict:
        self.pace_fragment()
        server_ts = self.ctx.now()
        raw = bytearray(reader.read(hl))
        start = reader.consumed
        end = start + size if size is not None else None
        tc = None
        buffering = False
        while True:
            if end is not None and reader.consumed >= end:
                break
            h = reader.peek_header()
            if h is None:
                if end is not None:
                    raise MkvError("truncated Cluster")
                break
            cid, csz, chl = h
            if end is None and (cid in mkv.LEVEL1 or cid in (mkv.EBML, mkv.SEGMENT)):
                break
            if csz is None:
                raise MkvError("unknown-size element inside a Cluster")
            if end is not None and reader.consumed + chl + csz > end:
                raise MkvError("Cluster child overruns the Cluster")
            if len(raw) + chl + csz > MAX_FRAGMENT_BYTES + 1024:
                raise MkvError("fragment too large")
            data = reader.read(chl + csz)
            raw += data
            if cid == mkv.TIMECODE and not buffering:
                tc = mkv.read_uint(data[chl:])
                self.ack("BUFFERING", number, tc)
                buffering = True
        if not buffering:
            raise MkvError("Cluster without Timecode")
        return {"number": number, "server_ts": server_ts, "raw": bytes(raw), "hl": hl, "tc": tc,
                "trailer": bytearray()}

    def _producer_ts(self, tc: int) -> float:
        secs = tc * self.scale / 1e9
        return self.start_ts + secs if self.tc_type == "RELATIVE" else secs

    def finish(self, p: dict):
        number, tc = p["number"], p["tc"]
        ci = mkv.parse_cluster_body(p["raw"][p["hl"]:])
        err = None
        track_numbers = {t["number"] for t in self.tracks}
        seen = {b[0] for b in ci.blocks}
        size = len(self.ebml) + len(self.header_children) + len(p["raw"]) + len(p["trailer"])
        rels = [b[1] for b in ci.blocks]
        base = 0 if self.tc_type == "ABSOLUTE" else int(round(self.start_ts * 1e9))
        first_ns = base + (tc + min(rels)) * self.scale if rels else None
        last_ns = base + (tc + max(rels)) * self.scale if rels else None
        with _last_lock:
            prev = _last_frame.get(self.stream.uid)
        if not self.store.stream_exists(self.stream.uid):
            self.errors += 1
            self.ack("ERROR", number, tc, 4008)
            raise StreamGone("stream deleted")
        if len(self.tracks) > MAX_TRACKS:
            err = 4012
        elif seen - track_numbers:
            err = 4010
        elif not rels or track_numbers - seen:
            err = 4011
        elif size > MAX_FRAGMENT_BYTES:
            err = 4001
        elif (max(rels) - min(0, min(rels))) * self.scale > MAX_FRAGMENT_NS:
            err = 4002
        elif prev is not None and first_ns <= prev:
            err = 4004
        if err:
            self.errors += 1
            self.ctx.log.info("PutMedia %s: fragment %s rejected with %d", self.stream.name, number, err)
            self.ack("ERROR", number, tc, err)
            return False
        with _last_lock:
            _last_frame[self.stream.uid] = last_ns
        # duration: last frame + one average frame interval of the first video track (or of all blocks)
        vt = next((t["number"] for t in self.tracks if t["type"] == "video"), None)
        vr = sorted(b[1] for b in ci.blocks if vt is None or b[0] == vt)
        step = (vr[-1] - vr[0]) / (len(vr) - 1) if len(vr) > 1 else 0
        duration_ms = int(round((vr[-1] + step) * self.scale / 1e6))
        body = p["raw"] + bytes(p["trailer"])
        self.store.add_fragment(self.stream, self.header_id, number, self._producer_ts(tc), p["server_ts"],
                                duration_ms, body, size)
        self.fragments += 1
        self.ack("RECEIVED", number, tc)
        if self.stream.retention_hours > 0:
            self.ack("PERSISTED", number, tc)
        return True


def reset_stream_state(uid: int):
    with _last_lock:
        _last_frame.pop(uid, None)
