"""Seeding for kvs-local: a signed streaming PutMedia client, ffmpeg-made media, live camera, bulk mode.

Everything except the bulk clone step goes through real, signed PutMedia over HTTP, so the ingest path
is exercised. Command line: ``python3 -m kvs_local seed {testsrc,file,live,bulk} --url URL --stream S ...``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

from . import mkv, sigv4

DEFAULT_AK = "AKIDKVSLOCAL"
DEFAULT_SK = "kvslocalsecret"
SAMPLES = "/work/shared/testdata/kvs-producer-samples"


class PutMediaError(Exception):
    def __init__(self, status, type_, message, body=b""):
        super().__init__(f"PutMedia HTTP {status} {type_}: {message}")
        self.status = status
        self.type_ = type_
        self.message = message
        self.body = body


class PutMediaResult:
    def __init__(self):
        self.acks: list[dict] = []
        self.status = None
        self.headers = {}
        self.error: Exception | None = None

    def by_type(self, t):
        return [a for a in self.acks if a.get("EventType") == t]


# ------------------------------------------------------------------ the client
def put_media(url: str, stream: str, chunks, access_key=DEFAULT_AK, secret_key=DEFAULT_SK, region="us-east-1",
              timecode_type="RELATIVE", start_ts: float | None = None, session_token=None, by_arn=False,
              on_ack=None, timeout=60.0, sign_time: _dt.datetime | None = None, extra_headers=None,
              wait_acks=True) -> PutMediaResult:
    """Streams `chunks` (an iterable of bytes, or bytes) as a chunked PutMedia body, signed like producer-c
    (every header but content-type/length/authorization signed, payload hash SHA-256("")). ACK lines are read
    concurrently by a second thread. Raises PutMediaError for a non-200 answer."""
    if isinstance(chunks, (bytes, bytearray)):
        data = bytes(chunks)
        chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    u = urllib.parse.urlsplit(url.rstrip("/") + "/putMedia")
    if start_ts is None:
        start_ts = time.time()
    hdrs = {
        "User-Agent": "kvs-local-seed/1.0",
        ("x-amzn-stream-arn" if by_arn else "x-amzn-stream-name"): stream,
        "x-amzn-fragment-timecode-type": timecode_type,
        "x-amzn-producer-start-timestamp": f"{start_ts:.3f}",
        "x-amzn-fragment-acknowledgment-required": "1",
        "Transfer-Encoding": "chunked",
        "Connection": "keep-alive",
        "Content-Type": "application/json",
    }
    hdrs.update(extra_headers or {})
    # producer-c hashes the empty string; the Java SDK sends x-amz-content-sha256: UNSIGNED-PAYLOAD
    ph = next((v for k, v in hdrs.items() if k.lower() == "x-amz-content-sha256"), sigv4.EMPTY_SHA256)
    signed = sigv4.sign_headers("POST", u.geturl(), hdrs, access_key, secret_key, region,
                                payload_hash=ph, session_token=session_token, now=sign_time)
    sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = f"POST {u.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
    res = PutMediaResult()
    got_status = threading.Event()
    rf = sock.makefile("rb")

    def reader():
        try:
            line = rf.readline()
            if not line:
                raise ConnectionError("connection closed before a response")
            res.status = int(line.split()[1])
            while True:
                h = rf.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                res.headers[k.strip().lower()] = v.strip()
            got_status.set()
            if res.status != 200:
                n = int(res.headers.get("content-length", 0))
                body = rf.read(n) if n else b""
                try:
                    j = json.loads(body)
                except ValueError:
                    j = {}
                res.error = PutMediaError(res.status, res.headers.get("x-amzn-errortype", ""),
                                          j.get("Message") or j.get("message") or "", body)
                return
            buf = b""
            while True:
                sz = rf.readline()
                if not sz:
                    break
                n = int(sz.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    rf.readline()
                    break
                buf += rf.read(n)
                rf.readline()
                while b"\n" in buf:
                    ln, buf = buf.split(b"\n", 1)
                    if ln.strip():
                        a = json.loads(ln)
                        res.acks.append(a)
                        if on_ack:
                            on_ack(a)
        except (OSError, ValueError) as e:
            if res.error is None:
                res.error = e
        finally:
            got_status.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        sock.sendall(head.encode("latin-1"))
        for c in chunks:
            if res.status is not None and res.status != 200:
                break
            if c:
                sock.sendall(b"%x\r\n" % len(c) + bytes(c) + b"\r\n")
        if res.status is None or res.status == 200:
            sock.sendall(b"0\r\n\r\n")
    except OSError as e:
        if res.error is None and res.status in (None, 200):
            res.error = e
    if wait_acks:
        t.join(timeout)
    else:
        got_status.wait(timeout)
    try:
        sock.close()
    except OSError:
        pass
    if isinstance(res.error, PutMediaError):
        raise res.error
    return res


# ------------------------------------------------------------------ media generation with ffmpeg
def _run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode()[-2000:]}")
    return p


def _video_codec_args(codec: str, rate: int, gop_seconds: float) -> list[str]:
    g = str(int(round(rate * gop_seconds)))
    if codec in ("h265", "hevc"):
        return ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-x265-params", f"keyint={g}:min-keyint={g}:scenecut=0:bframes=0:log-level=error"]
    return ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", g, "-keyint_min", g,
            "-sc_threshold", "0", "-bf", "0"]


MKV_ARGS = ["-cluster_time_limit", "10000", "-cluster_size_limit", "50000000", "-f", "matroska"]


def make_testsrc_mkv(out_path: str, duration: float = 6.0, codec: str = "h264", audio: bool = False,
                     size: str = "320x240", rate: int = 25, gop_seconds: float = 2.0) -> str:
    """ffmpeg testsrc (+ sine audio as AAC) encoded to MKV with one Cluster per GOP (default 2 s)."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={duration}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration}"]
    cmd += _video_codec_args(codec, rate, gop_seconds)
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "64k", "-ac", "1"]
    cmd += MKV_ARGS + [out_path]
    _run(cmd)
    return out_path


def remux_file_mkv(src: str, out_path: str, gop_seconds: float = 2.0, codec: str = "h264", copy: bool = False) -> str:
    """Any MKV/MP4 → MKV with a keyframe (and so a Cluster) every gop_seconds (re-encodes unless copy)."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", src]
    if copy:
        cmd += ["-c", "copy"]
    else:
        rate = 25
        try:
            pr = _run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=avg_frame_rate",
                       "-of", "csv=p=0", src]).stdout.decode().strip()
            n, _, d = pr.partition("/")
            rate = max(1, round(float(n) / float(d or 1)))
        except Exception:
            pass
        cmd += _video_codec_args(codec, rate, gop_seconds) + ["-c:a", "aac", "-b:a", "64k"]
    cmd += MKV_ARGS + [out_path]
    _run(cmd)
    return out_path


def cluster_count(path_or_bytes) -> int:
    buf = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb").read()
    n = 0
    for el in mkv.walk_documents(buf):
        if el.id == mkv.SEGMENT:
            n += sum(1 for c in el.children if c.id == mkv.CLUSTER)
    return n


def file_chunks(path: str, size: int = 65536):
    with open(path, "rb") as f:
        while True:
            b = f.read(size)
            if not b:
                return
            yield b


# ------------------------------------------------------------------ producer-SDK-style media (PIC layout)
def sample_h264_gops(max_gops: int = 4):
    """(codec_private, [[frame,...] per GOP]) from the producer-c H.264 sample frames (Annex-B → AVCC)."""
    files = sorted(glob.glob(os.path.join(SAMPLES, "h264SampleFrames", "frame-*.h264")))
    raw = [open(f, "rb").read() for f in files]
    cpd, frames = mkv.avcc_from_annexb(raw)
    gops = [frames[i:i + 45] for i in range(0, len(frames), 45)][:max_gops]
    return cpd, gops


def producer_stream(n_fragments: int = 3, fps: int = 25, start_tc: int = 0, tracks=None, audio=False) -> bytes:
    """A complete producer-style PutMedia body from the sample frames: one Cluster (GOP of 45 frames, 1.8 s)
    per fragment, ABSOLUTE-or-RELATIVE timecodes starting at start_tc (ms)."""
    cpd, gops = sample_h264_gops()
    trs = tracks or [{"number": 1, "type": "video", "codec_id": "V_MPEG4/ISO/AVC", "codec_private": cpd,
                      "width": 1280, "height": 720}]
    w = mkv.ProducerMkvWriter(trs)
    out = [w.header()]
    tc = start_tc
    step = 1000 // fps
    for i in range(n_fragments):
        gop = gops[i % len(gops)]
        frames = [(1, k * step, k == 0, f) for k, f in enumerate(gop)]
        out.append(w.cluster(tc, frames))
        tc += len(gop) * step
    return b"".join(out)


# ------------------------------------------------------------------ admin / control helpers (stdlib only)
def _signed_json(url, op_path, body, ak, sk, region):
    data = json.dumps(body).encode()
    full = url.rstrip("/") + op_path
    h = sigv4.sign_headers("POST", full, {"Content-Type": "application/json"}, ak, sk, region, body=data,
                           exclude=("authorization", "content-length"))
    req = urllib.request.Request(full, data=data, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        b = e.read()
        raise PutMediaError(e.code, e.headers.get("x-amzn-ErrorType", ""), b.decode(errors="replace"), b)


def ensure_stream(url, stream, retention_hours=24, ak=DEFAULT_AK, sk=DEFAULT_SK, region="us-east-1",
                  media_type=None):
    try:
        _signed_json(url, "/describeStream", {"StreamName": stream}, ak, sk, region)
    except PutMediaError as e:
        if e.status != 404:
            raise
        body = {"StreamName": stream, "DataRetentionInHours": retention_hours}
        if media_type:
            body["MediaType"] = media_type
        _signed_json(url, "/createStream", body, ak, sk, region)


def admin(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + "/_admin/" + path, data=data,
                                 method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


# ------------------------------------------------------------------ seeding modes
def _default_start(url, stream, duration, ak, sk, region) -> float:
    """now - duration, but never overlapping fragments already in the stream (that would draw 4004 ACKs
    when the same stream is seeded twice in a row)."""
    now = time.time()
    start = now - duration
    try:
        r = _signed_json(url, "/listFragments", {
            "StreamName": stream, "MaxResults": 1000,
            "FragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                 "TimestampRange": {"StartTimestamp": start - 60, "EndTimestamp": now + 86400}}},
            ak, sk, region)
        ends = [f["ProducerTimestamp"] + f["FragmentLengthInMilliseconds"] / 1000.0 for f in r["Fragments"]]
        if ends:
            start = max(start, max(ends) + 0.001)
    except PutMediaError:
        pass
    return start


def seed_testsrc(url, stream, duration=6.0, codec="h264", audio=False, start_ts=None, size="320x240", rate=25,
                 gop_seconds=2.0, ak=DEFAULT_AK, sk=DEFAULT_SK, region="us-east-1", create=True,
                 retention_hours=24) -> PutMediaResult:
    if create:
        ensure_stream(url, stream, retention_hours, ak, sk, region,
                      media_type=("video/h265" if codec in ("h265", "hevc") else "video/h264") + (",audio/aac" if audio else ""))
    with tempfile.TemporaryDirectory(prefix="kvs-seed-") as td:
        p = make_testsrc_mkv(os.path.join(td, "src.mkv"), duration, codec, audio, size, rate, gop_seconds)
        if start_ts is None:
            start_ts = _default_start(url, stream, duration, ak, sk, region)
        return put_media(url, stream, file_chunks(p), ak, sk, region, "RELATIVE", start_ts)


def seed_file(url, stream, path, start_ts=None, gop_seconds=2.0, codec="h264", copy=False, ak=DEFAULT_AK,
              sk=DEFAULT_SK, region="us-east-1", create=True, retention_hours=24) -> PutMediaResult:
    if create:
        ensure_stream(url, stream, retention_hours, ak, sk, region)
    with tempfile.TemporaryDirectory(prefix="kvs-seed-") as td:
        p = remux_file_mkv(path, os.path.join(td, "src.mkv"), gop_seconds, codec, copy)
        if start_ts is None:
            start_ts = _default_start(url, stream, 0, ak, sk, region)
        return put_media(url, stream, file_chunks(p), ak, sk, region, "RELATIVE", start_ts)


class LiveSeeder:
    """'Live camera': ffmpeg encodes testsrc in real time (-re) into a live MKV on a pipe, and the bytes
    are streamed as one long PutMedia request: a 2-second fragment appears every 2 seconds."""

    def __init__(self, url, stream, codec="h264", audio=False, size="320x240", rate=25, gop_seconds=2.0,
                 ak=DEFAULT_AK, sk=DEFAULT_SK, region="us-east-1", create=True, retention_hours=24,
                 duration: float | None = None):
        if create:
            ensure_stream(url, stream, retention_hours, ak, sk, region)
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
               "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}" + (f":duration={duration}" if duration else "")]
        if audio:
            cmd += ["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100" + (f":duration={duration}" if duration else "")]
        cmd += _video_codec_args(codec, rate, gop_seconds)
        if audio:
            cmd += ["-c:a", "aac", "-b:a", "64k", "-ac", "1"]
        cmd += ["-flush_packets", "1", "-live", "1"] + MKV_ARGS + ["pipe:1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.acks: list[dict] = []
        self.result = None
        self.error = None
        self.id = uuid.uuid4().hex[:12]
        start = time.time()

        def chunks():
            while True:
                b = self.proc.stdout.read1(65536)
                if not b:
                    return
                yield b

        def run():
            try:
                self.result = put_media(url, stream, chunks(), ak, sk, region, "RELATIVE", start,
                                        on_ack=self.acks.append, timeout=3600)
            except Exception as e:  # noqa
                self.error = e
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def persisted(self) -> int:
        """Fragments accepted so far (RECEIVED ACKs)."""
        return sum(1 for a in list(self.acks) if a.get("EventType") == "RECEIVED")

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout)
        return self


def seed_bulk(url, stream, count=300000, start_ts=None, interval_ms=2000, templates=3, codec="h264",
              audio=False, server_delay_ms=500, ak=DEFAULT_AK, sk=DEFAULT_SK, region="us-east-1",
              retention_hours=None) -> dict:
    """Very long streams in seconds: `templates` 2-second fragments are encoded once and ingested with a real
    PutMedia, then the server clones index rows referencing them (rewritten cluster timecodes/timestamps)."""
    span_s = count * interval_ms / 1000.0
    if start_ts is None:
        start_ts = time.time() - span_s - 60
    if retention_hours is None:
        retention_hours = int(min(87600, (time.time() - start_ts) / 3600 + 25))
    ensure_stream(url, stream, retention_hours, ak, sk, region)
    with tempfile.TemporaryDirectory(prefix="kvs-bulk-") as td:
        p = make_testsrc_mkv(os.path.join(td, "tpl.mkv"), templates * interval_ms / 1000.0, codec, audio,
                             gop_seconds=interval_ms / 1000.0)
        r = put_media(url, stream, file_chunks(p), ak, sk, region, "RELATIVE", start_ts)
    numbers = [a["FragmentNumber"] for a in r.acks if a["EventType"] == "RECEIVED"]
    t0 = time.monotonic()
    res = admin(url, "seed", {"mode": "clone", "stream": stream, "count": count, "start": start_ts,
                              "interval_ms": interval_ms, "server_delay_ms": server_delay_ms, "templates": numbers})
    res["wall_seconds"] = round(time.monotonic() - t0, 3)
    return res


# ------------------------------------------------------------------ admin endpoint support (server side)
def admin_seed(srv, req: dict) -> dict:
    mode = req.get("mode")
    stream = req.get("stream")
    url = srv.base_url
    ak, sk, region = srv.config.access_key, srv.config.secret_key, srv.config.region
    from .errors import KvsError
    if not stream:
        raise KvsError(400, "InvalidArgumentException", "admin seed: 'stream' is required")
    if mode == "clone":
        s = srv.store.get_stream(stream)
        from .putmedia import reset_stream_state
        reset_stream_state(s.uid)
        return srv.store.bulk_clone(s, int(req.get("count", 1000)), float(req.get("start", time.time())),
                                    int(req.get("interval_ms", 2000)), int(req.get("server_delay_ms", 500)),
                                    req.get("templates"), bool(req.get("keep_templates")))
    if mode == "bulk":
        return seed_bulk(url, stream, int(req.get("count", 1000)), req.get("start"), int(req.get("interval_ms", 2000)),
                         int(req.get("templates", 3)), req.get("codec", "h264"), bool(req.get("audio")),
                         ak=ak, sk=sk, region=region)
    if mode == "testsrc":
        r = seed_testsrc(url, stream, float(req.get("duration", 6)), req.get("codec", "h264"), bool(req.get("audio")),
                         req.get("start"), ak=ak, sk=sk, region=region)
        return {"acks": r.acks}
    if mode == "file":
        r = seed_file(url, stream, req["path"], req.get("start"), ak=ak, sk=sk, region=region)
        return {"acks": r.acks}
    if mode == "live":
        ls = LiveSeeder(url, stream, req.get("codec", "h264"), bool(req.get("audio")), ak=ak, sk=sk, region=region,
                        duration=req.get("duration"))
        srv.seeders[ls.id] = ls
        return {"id": ls.id}
    raise KvsError(400, "InvalidArgumentException", f"admin seed: unknown mode {mode!r}")


def admin_seed_stop(srv, req: dict) -> dict:
    ls = srv.seeders.pop(req.get("id"), None)
    if ls is None:
        from .errors import KvsError
        raise KvsError(404, "ResourceNotFoundException", "admin seed: no such live seeder")
    ls.stop()
    return {"acks": len(ls.acks), "fragments": ls.persisted()}


# ------------------------------------------------------------------ command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="kvs-local seed")
    sub = p.add_subparsers(dest="mode", required=True)

    def common(sp):
        sp.add_argument("--url", required=True, help="kvs-local base URL, e.g. http://127.0.0.1:4566")
        sp.add_argument("--stream", required=True)
        sp.add_argument("--access-key", default=os.environ.get("KVS_LOCAL_ACCESS_KEY", DEFAULT_AK))
        sp.add_argument("--secret-key", default=os.environ.get("KVS_LOCAL_SECRET_KEY", DEFAULT_SK))
        sp.add_argument("--region", default="us-east-1")
        sp.add_argument("--codec", default="h264", choices=["h264", "h265"])
        sp.add_argument("--audio", action="store_true", help="add AAC sine audio")
    sp = sub.add_parser("testsrc", help="ffmpeg testsrc media, real PutMedia")
    common(sp)
    sp.add_argument("--duration", type=float, default=10.0)
    sp.add_argument("--start", type=float, default=None, help="producer start time (epoch s)")
    sp = sub.add_parser("file", help="an MKV/MP4 file, remuxed to 2 s clusters, real PutMedia")
    common(sp)
    sp.add_argument("path")
    sp.add_argument("--start", type=float, default=None)
    sp.add_argument("--copy", action="store_true", help="do not re-encode (clusters follow the source GOP)")
    sp = sub.add_parser("live", help="live camera: a 2 s fragment every 2 s until interrupted")
    common(sp)
    sp.add_argument("--duration", type=float, default=None)
    sp = sub.add_parser("bulk", help="very long streams from a few template fragments")
    common(sp)
    sp.add_argument("--count", type=int, default=302400, help="fragments (default: 7 days of 2 s)")
    sp.add_argument("--start", type=float, default=None)
    sp.add_argument("--interval-ms", type=int, default=2000)
    sp.add_argument("--templates", type=int, default=3)
    a = p.parse_args(argv)
    kw = dict(ak=a.access_key, sk=a.secret_key, region=a.region)
    if a.mode == "testsrc":
        r = seed_testsrc(a.url, a.stream, a.duration, a.codec, a.audio, a.start, **kw)
        print(json.dumps({"received": len(r.by_type("RECEIVED")), "errors": r.by_type("ERROR")}))
    elif a.mode == "file":
        r = seed_file(a.url, a.stream, a.path, a.start, codec=a.codec, copy=a.copy, **kw)
        print(json.dumps({"received": len(r.by_type("RECEIVED")), "errors": r.by_type("ERROR")}))
    elif a.mode == "live":
        ls = LiveSeeder(a.url, a.stream, a.codec, a.audio, duration=a.duration, **kw)
        try:
            while ls.proc.poll() is None:
                time.sleep(1)
                print(f"\rfragments: {ls.persisted()}", end="", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        ls.stop()
        print(json.dumps({"fragments": ls.persisted()}))
    elif a.mode == "bulk":
        t0 = time.monotonic()
        r = seed_bulk(a.url, a.stream, a.count, a.start, a.interval_ms, a.templates, a.codec, a.audio, **kw)
        r["total_seconds"] = round(time.monotonic() - t0, 3)
        print(json.dumps(r))
    return 0
