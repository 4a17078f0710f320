"""Persistent store of kvs-local: an sqlite3 index plus append-only media files.

Layout of the data directory::

    DATA/index.sqlite3          streams, producer headers, fragment index rows
    DATA/media/<uid>.mkvdata    per stream: the stored Cluster bytes (+ trailing elements) of every fragment

A fragment row points at (file, offset, length) of its Cluster bytes and at the producer header it was
sent with. Bulk-seeded rows share template bytes and carry ``tc`` (a rewritten Cluster timecode), which
``fragment_mkv`` patches into the output.

Thread-safe: one sqlite connection guarded by a lock.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import sqlite3
import string
import threading
import time
from dataclasses import dataclass, field

from . import mkv
from .errors import KvsError, not_found

FRAGMENT_PREFIX = 91343852333  # 11 digits; fragment numbers have 47 digits
SEQ_BASE = 181432392682062607  # makes the 18 sequence digits look like real ones
NO_RETENTION_WINDOW_S = 300.0  # retention 0: fragments stay readable for 5 minutes (host buffer)


@dataclass
class Stream:
    name: str
    arn: str
    status: str
    retention_hours: int
    media_type: str | None
    creation_time: float
    version: str
    device_name: str | None = None
    kms_key_id: str | None = None
    uid: int = 0
    tags: dict = field(default_factory=dict)

    def info(self) -> dict:
        return {"DeviceName": self.device_name, "StreamName": self.name, "StreamARN": self.arn,
                "MediaType": self.media_type, "KmsKeyId": self.kms_key_id, "Version": self.version,
                "Status": self.status, "CreationTime": self.creation_time,
                "DataRetentionInHours": self.retention_hours}


@dataclass
class Fragment:
    number: str
    producer_ts: float
    server_ts: float
    duration_ms: int
    size: int  # FragmentSizeInBytes

    def as_json(self) -> dict:
        return {"FragmentNumber": self.number, "FragmentSizeInBytes": self.size,
                "ProducerTimestamp": self.producer_ts, "ServerTimestamp": self.server_ts,
                "FragmentLengthInMilliseconds": self.duration_ms}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS streams(
  uid INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL, arn TEXT UNIQUE NOT NULL,
  status TEXT, retention_hours INTEGER, media_type TEXT, device_name TEXT, kms_key_id TEXT,
  creation_time REAL, version TEXT, tags TEXT);
CREATE TABLE IF NOT EXISTS headers(
  id INTEGER PRIMARY KEY AUTOINCREMENT, stream_uid INTEGER, ebml BLOB, children BLOB,
  timecode_scale INTEGER, tracks TEXT);
CREATE TABLE IF NOT EXISTS fragments(
  stream_uid INTEGER NOT NULL, seq INTEGER NOT NULL, number TEXT NOT NULL,
  producer_ts REAL, server_ts REAL, duration_ms INTEGER, size INTEGER,
  header_id INTEGER, file TEXT, off INTEGER, len INTEGER, tc INTEGER,
  PRIMARY KEY(stream_uid, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS frag_num ON fragments(stream_uid, number);
CREATE INDEX IF NOT EXISTS frag_pts ON fragments(stream_uid, producer_ts);
CREATE INDEX IF NOT EXISTS frag_sts ON fragments(stream_uid, server_ts);
"""

_FCOLS = "number, producer_ts, server_ts, duration_ms, size"


def _version() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(20))


class Store:
    def __init__(self, data_dir: str, account: str = "123456789012", region: str = "us-east-1",
                 creating_seconds: float = 0.0, now=time.time):
        self.data_dir = data_dir
        self.media_dir = os.path.join(data_dir, "media")
        os.makedirs(self.media_dir, exist_ok=True)
        self.account = account
        self.region = region
        self.creating_seconds = creating_seconds
        self.now = now
        self.lock = threading.RLock()
        self.db = sqlite3.connect(os.path.join(data_dir, "index.sqlite3"), check_same_thread=False,
                                  isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._fds: dict[str, int] = {}
        self._headers: dict[int, tuple] = {}
        row = self.db.execute("SELECT v FROM meta WHERE k='seq'").fetchone()
        self._seq = int(row[0]) if row else 0

    def close(self):
        with self.lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self.db.close()

    # ------------------------------------------------------------ streams
    def _row_to_stream(self, r) -> Stream:
        uid, name, arn, status, ret, mt, dev, kms, ct, ver, tags = r
        if status == "CREATING" and self.now() >= ct + self.creating_seconds:
            status = "ACTIVE"
        return Stream(name=name, arn=arn, status=status, retention_hours=ret, media_type=mt,
                      creation_time=ct, version=ver, device_name=dev, kms_key_id=kms, uid=uid,
                      tags=json.loads(tags or "{}"))

    _SCOLS = "uid, name, arn, status, retention_hours, media_type, device_name, kms_key_id, creation_time, version, tags"

    def get_stream(self, name: str | None = None, arn: str | None = None) -> Stream:
        with self.lock:
            if arn:
                r = self.db.execute(f"SELECT {self._SCOLS} FROM streams WHERE arn=?", (arn,)).fetchone()
                if r and name and r[1] != name:
                    r = None
            elif name:
                r = self.db.execute(f"SELECT {self._SCOLS} FROM streams WHERE name=?", (name,)).fetchone()
            else:
                raise KvsError(400, "InvalidArgumentException", "Either StreamName or StreamARN must be specified.")
        if not r:
            raise not_found()
        return self._row_to_stream(r)

    def stream_exists(self, uid: int) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM streams WHERE uid=?", (uid,)).fetchone() is not None

    def find_stream(self, name=None, arn=None) -> Stream | None:
        try:
            return self.get_stream(name, arn)
        except KvsError:
            return None

    def create_stream(self, name, device_name=None, media_type=None, kms_key_id=None,
                      retention_hours=0, tags=None) -> Stream:
        now = round(self.now(), 3)
        arn = f"arn:aws:kinesisvideo:{self.region}:{self.account}:stream/{name}/{int(now * 1000)}"
        if kms_key_id is None:
            kms_key_id = f"arn:aws:kms:{self.region}:{self.account}:alias/aws/kinesisvideo"
        status = "CREATING" if self.creating_seconds > 0 else "ACTIVE"
        with self.lock:
            if self.db.execute("SELECT 1 FROM streams WHERE name=?", (name,)).fetchone():
                raise KvsError(400, "ResourceInUseException",
                               f"The stream {name} already exists.")
            self.db.execute(
                "INSERT INTO streams(name, arn, status, retention_hours, media_type, device_name, kms_key_id,"
                " creation_time, version, tags) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (name, arn, status, retention_hours, media_type, device_name, kms_key_id, now, _version(),
                 json.dumps(tags or {})))
        return self.get_stream(name)

    def list_streams(self, prefix: str | None = None) -> list[Stream]:
        with self.lock:
            if prefix:
                rows = self.db.execute(f"SELECT {self._SCOLS} FROM streams WHERE substr(name,1,?)=? ORDER BY name",
                                       (len(prefix), prefix)).fetchall()
            else:
                rows = self.db.execute(f"SELECT {self._SCOLS} FROM streams ORDER BY name").fetchall()
        return [self._row_to_stream(r) for r in rows]

    def update_stream(self, stream: Stream, **fields) -> Stream:
        sets = []
        vals = []
        for k, v in fields.items():
            if k == "tags":
                v = json.dumps(v)
            sets.append(f"{k}=?")
            vals.append(v)
        bump = any(k != "tags" for k in fields)
        if bump:
            sets.append("version=?")
            vals.append(_version())
        with self.lock:
            self.db.execute(f"UPDATE streams SET {', '.join(sets)} WHERE uid=?", (*vals, stream.uid))
        return self.get_stream(stream.name)

    def delete_stream(self, stream: Stream):
        with self.lock:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM fragments WHERE stream_uid=?", (stream.uid,))
            self.db.execute("DELETE FROM headers WHERE stream_uid=?", (stream.uid,))
            self.db.execute("DELETE FROM streams WHERE uid=?", (stream.uid,))
            self.db.execute("COMMIT")
            for fn in list(self._fds):
                if fn.startswith(f"{stream.uid}."):
                    os.close(self._fds.pop(fn))
            for fn in os.listdir(self.media_dir):
                if fn.startswith(f"{stream.uid}."):
                    os.unlink(os.path.join(self.media_dir, fn))

    # ------------------------------------------------------------ fragment numbers
    def _next_numbers(self, count: int) -> list[str]:
        with self.lock:
            first = self._seq + 1
            self._seq += count
            self.db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES('seq', ?)", (str(self._seq),))
        rnd = random.Random(first)
        return [f"{FRAGMENT_PREFIX}{SEQ_BASE + s:018d}{rnd.randrange(10 ** 18):018d}"
                for s in range(first, first + count)]

    def next_fragment_number(self) -> str:
        return self._next_numbers(1)[0]

    # ------------------------------------------------------------ writing
    def _fd(self, fname: str) -> int:
        fd = self._fds.get(fname)
        if fd is None:
            fd = os.open(os.path.join(self.media_dir, fname), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            self._fds[fname] = fd
        return fd

    def add_header(self, stream: Stream, ebml: bytes, children: bytes, timecode_scale: int,
                   tracks: list[dict]) -> int:
        tj = json.dumps([{**t, "codec_private": t["codec_private"].hex()} for t in tracks])
        with self.lock:
            cur = self.db.execute("INSERT INTO headers(stream_uid, ebml, children, timecode_scale, tracks)"
                                  " VALUES(?,?,?,?,?)", (stream.uid, ebml, children, timecode_scale, tj))
            return cur.lastrowid

    def _append(self, stream: Stream, data: bytes) -> tuple[str, int]:
        fname = f"{stream.uid}.mkvdata"
        with self.lock:
            fd = self._fd(fname)
            off = os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, data)
        return fname, off

    def add_fragment(self, stream: Stream, header_id: int, number: str, producer_ts: float, server_ts: float,
                     duration_ms: int, body: bytes, size: int) -> Fragment:
        fname, off = self._append(stream, body)
        with self.lock:
            seq = int(number[11:29]) - SEQ_BASE
            self.db.execute("INSERT INTO fragments(stream_uid, seq, number, producer_ts, server_ts, duration_ms,"
                            " size, header_id, file, off, len, tc) VALUES(?,?,?,?,?,?,?,?,?,?,?,NULL)",
                            (stream.uid, seq, number, round(producer_ts, 3), round(server_ts, 3), duration_ms,
                             size, header_id, fname, off, len(body)))
        return Fragment(number, round(producer_ts, 3), round(server_ts, 3), duration_ms, size)

    def extend_fragment(self, stream: Stream, number: str, data: bytes) -> bool:
        """Appends elements that followed a fragment's Cluster (producer Tags, Cues) to its stored bytes,
        if they are still the last bytes of the stream's media file."""
        with self.lock:
            r = self.db.execute("SELECT file, off, len, seq FROM fragments WHERE stream_uid=? AND number=?",
                                (stream.uid, number)).fetchone()
            if not r:
                return False
            fname, off, ln, seq = r
            fd = self._fd(fname)
            if os.lseek(fd, 0, os.SEEK_END) != off + ln:
                return False
            os.write(fd, data)
            self.db.execute("UPDATE fragments SET len=len+?, size=size+? WHERE stream_uid=? AND seq=?",
                            (len(data), len(data), stream.uid, seq))
        return True

    def bulk_clone(self, stream: Stream, count: int, start_ts: float, interval_ms: int = 2000,
                   server_delay_ms: int = 500, templates: list[str] | None = None, keep_templates: bool = False) -> dict:
        """Builds `count` index rows that reference the stream's existing fragments (the templates) with
        rewritten timecodes/timestamps: fragment i starts at start_ts + i*interval_ms, cluster timecode
        i*interval_ms (RELATIVE to start_ts). Template bytes are normalized to 8-byte Timecodes once."""
        t0 = time.monotonic()
        with self.lock:
            q = "SELECT seq, number, header_id, file, off, len, size FROM fragments WHERE stream_uid=? ORDER BY seq"
            rows = self.db.execute(q, (stream.uid,)).fetchall()
        if templates:
            rows = [r for r in rows if r[1] in set(templates)]
        if not rows:
            raise KvsError(400, "InvalidArgumentException", "bulk: the stream has no template fragments")
        tpls = []
        for seq, number, header_id, fname, off, ln, size in rows:
            body = self._read(fname, off, ln)
            norm = mkv.normalize_cluster(body[:self._cluster_len(body)]) + body[self._cluster_len(body):]
            nf, noff = self._append(stream, norm)
            hdr = self._header(header_id)
            tpls.append((header_id, nf, noff, len(norm), len(hdr[0]) + len(hdr[1]) + len(norm)))
        numbers = self._next_numbers(count)
        interval = interval_ms / 1000.0
        dur = int(interval_ms)
        def gen():
            for i, num in enumerate(numbers):
                hid, nf, noff, nlen, size = tpls[i % len(tpls)]
                pts = round(start_ts + i * interval, 3)
                yield (stream.uid, int(num[11:29]) - SEQ_BASE, num, pts, round(pts + server_delay_ms / 1000.0, 3), dur, size,
                       hid, nf, noff, nlen, i * interval_ms)
        with self.lock:
            self.db.execute("BEGIN")
            if not keep_templates:
                self.db.executemany("DELETE FROM fragments WHERE stream_uid=? AND seq=?",
                                    [(stream.uid, r[0]) for r in rows])
            self.db.executemany("INSERT INTO fragments(stream_uid, seq, number, producer_ts, server_ts, duration_ms,"
                                " size, header_id, file, off, len, tc) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", gen())
            self.db.execute("COMMIT")
        return {"count": count, "templates": len(tpls), "seconds": round(time.monotonic() - t0, 3),
                "first": numbers[0], "last": numbers[-1]}

    @staticmethod
    def _cluster_len(body: bytes) -> int:
        eid, il = mkv.read_id(body, 0)
        size, sw = mkv.read_size(body, il)
        if size is not None:
            return il + sw + size
        els = mkv.walk(body, 0, len(body), 1, mkv.SEGMENT)
        return els[0].end if els else len(body)

    # ------------------------------------------------------------ reading
    def _read(self, fname: str, off: int, ln: int) -> bytes:
        with self.lock:
            fd = self._fd(fname)
        return os.pread(fd, ln, off)

    def _header(self, header_id: int) -> tuple:
        h = self._headers.get(header_id)
        if h is None:
            with self.lock:
                r = self.db.execute("SELECT ebml, children, timecode_scale, tracks FROM headers WHERE id=?",
                                    (header_id,)).fetchone()
            if not r:
                raise KvsError(500, "InternalFailure", "missing producer header")
            tracks = [{**t, "codec_private": bytes.fromhex(t["codec_private"])} for t in json.loads(r[3])]
            h = (bytes(r[0]), bytes(r[1]), r[2], tracks)
            self._headers[header_id] = h
        return h

    def retention_cutoff(self, stream: Stream) -> float:
        if stream.retention_hours <= 0:
            return self.now() - NO_RETENTION_WINDOW_S
        return self.now() - stream.retention_hours * 3600.0

    def fragments_in_range(self, stream: Stream, ts_type: str, start: float, end: float) -> list[Fragment]:
        col = "producer_ts" if ts_type == "PRODUCER_TIMESTAMP" else "server_ts"
        with self.lock:
            rows = self.db.execute(
                f"SELECT {_FCOLS} FROM fragments WHERE stream_uid=? AND {col}>=? AND {col}<=? AND server_ts>=?"
                f" ORDER BY {col}, seq", (stream.uid, round(start, 3), round(end, 3),
                                          self.retention_cutoff(stream))).fetchall()
        return [Fragment(*r) for r in rows]

    def page_fragments(self, stream: Stream, ts_type: str | None, start: float, end: float, after_seq: int,
                       limit: int) -> tuple[list[Fragment], int | None]:
        """One ListFragments page in ingestion order: (fragments, last seq if more remain else None)."""
        cond = ""
        args: list = [stream.uid, after_seq, self.retention_cutoff(stream)]
        if ts_type:
            col = "producer_ts" if ts_type == "PRODUCER_TIMESTAMP" else "server_ts"
            cond = f" AND {col}>=? AND {col}<=?"
            args += [round(start, 3), round(end, 3)]
        with self.lock:
            rows = self.db.execute(
                f"SELECT seq, {_FCOLS} FROM fragments WHERE stream_uid=? AND seq>? AND server_ts>=?{cond}"
                f" ORDER BY seq LIMIT ?", (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [Fragment(*r[1:]) for r in rows], (rows[-1][0] if more and rows else None)

    def fragments_after(self, stream: Stream, after_seq: int, limit: int = 100) -> list[tuple[int, Fragment]]:
        with self.lock:
            rows = self.db.execute(f"SELECT seq, {_FCOLS} FROM fragments WHERE stream_uid=? AND seq>? AND server_ts>=?"
                                   " ORDER BY seq LIMIT ?",
                                   (stream.uid, after_seq, self.retention_cutoff(stream), limit)).fetchall()
        return [(r[0], Fragment(*r[1:])) for r in rows]

    def count_fragments(self, stream: Stream) -> int:
        with self.lock:
            return self.db.execute("SELECT count(*) FROM fragments WHERE stream_uid=? AND server_ts>=?",
                                   (stream.uid, self.retention_cutoff(stream))).fetchone()[0]

    def latest_fragment(self, stream: Stream) -> Fragment | None:
        with self.lock:
            r = self.db.execute(f"SELECT {_FCOLS} FROM fragments WHERE stream_uid=? AND server_ts>=?"
                                " ORDER BY server_ts DESC, seq DESC LIMIT 1",
                                (stream.uid, self.retention_cutoff(stream))).fetchone()
        return Fragment(*r) if r else None

    def _frag_row(self, stream: Stream, number: str):
        with self.lock:
            return self.db.execute(
                # INDEXED BY: with the server_ts condition sqlite may otherwise scan the timestamp
                # index (every fragment of the stream) for each lookup
                f"SELECT {_FCOLS}, header_id, file, off, len, tc, seq FROM fragments INDEXED BY frag_num"
                " WHERE stream_uid=? AND number=? AND server_ts>=?",
                (stream.uid, number, self.retention_cutoff(stream))).fetchone()

    def get_fragment(self, stream: Stream, number: str) -> Fragment | None:
        r = self._frag_row(stream, number)
        return Fragment(*r[:5]) if r else None

    def fragment_seq(self, stream: Stream, number: str) -> int | None:
        r = self._frag_row(stream, number)
        return r[-1] if r else None

    def fragment_mkv(self, stream: Stream, number: str, trailer_pairs=None) -> bytes:
        """The complete single-fragment MKV document as GetMediaForFragmentList returns it."""
        r = self._frag_row(stream, number)
        if not r:
            raise not_found(f"Fragment {number} not found")
        num, pts, sts, dur, size, header_id, fname, off, ln, tc, seq = r
        ebml, children, _scale, _tracks = self._header(header_id)
        body = self._read(fname, off, ln)
        if tc is not None:
            body = mkv.rewrite_cluster_timecode(body, tc)
        pairs = [("AWS_KINESISVIDEO_FRAGMENT_NUMBER", num),
                 ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", mkv.fmt_ts(sts)),
                 ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", mkv.fmt_ts(pts))]
        tp = trailer_pairs(num) if callable(trailer_pairs) else trailer_pairs
        return mkv.fragment_document(ebml, children, pairs, body, tp)

    def track_info(self, stream: Stream, number: str) -> list[dict]:
        r = self._frag_row(stream, number)
        if not r:
            raise not_found(f"Fragment {number} not found")
        return [dict(t) for t in self._header(r[5])[3]]
