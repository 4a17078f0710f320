"""kvs-local HTTP server: routing, SigV4 check, quotas, fault injection, counters, admin endpoint."""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import archive, control, mkv, putmedia, sigv4
from .errors import KvsError, client_limit
from .store import Store

log = logging.getLogger("kvs_local")

CONTROL_PATHS = {
    "/createStream": "CreateStream", "/describeStream": "DescribeStream", "/listStreams": "ListStreams",
    "/deleteStream": "DeleteStream", "/updateStream": "UpdateStream",
    "/updateDataRetention": "UpdateDataRetention", "/getDataEndpoint": "GetDataEndpoint",
    "/tagStream": "TagStream", "/untagStream": "UntagStream", "/listTagsForStream": "ListTagsForStream",
    "/describeStreamStorageConfiguration": "DescribeStreamStorageConfiguration",
    "/updateStreamStorageConfiguration": "UpdateStreamStorageConfiguration",
}
ARCHIVE_PATHS = {"/listFragments": "ListFragments", "/getMediaForFragmentList": "GetMediaForFragmentList",
                 "/getMedia": "GetMedia"}
MEDIA_PATHS = {"/getClip": "GetClip", "/getHLSStreamingSessionURL": "GetHLSStreamingSessionURL",
               "/getDASHStreamingSessionURL": "GetDASHStreamingSessionURL", "/getImages": "GetImages"}

# per-stream TPS quotas (kvs-api.md 1.3, 2.x, 3.x)
STREAM_TPS = {
    "DescribeStream": 5, "GetDataEndpoint": 5, "DeleteStream": 5, "UpdateStream": 5, "UpdateDataRetention": 5,
    "TagStream": 5, "UntagStream": 5, "ListTagsForStream": 5, "ListFragments": 5, "GetMediaForFragmentList": 5,
    "GetMedia": 5, "PutMedia": 5, "GetClip": 1, "GetHLSStreamingSessionURL": 5, "GetDASHStreamingSessionURL": 5,
    "GetImages": 5,  # unconfirmed (kvs-api.md 2.6): assumed as for the other archived-media APIs
}
ACCOUNT_TPS = {"CreateStream": 50, "ListStreams": 50, "DescribeStream": 300, "GetDataEndpoint": 300,
               "DeleteStream": 50, "UpdateStream": 50, "UpdateDataRetention": 50, "TagStream": 50,
               "UntagStream": 50, "ListTagsForStream": 50, "GetClip": 25}
MEDIA_BANDWIDTH = 25_000_000  # bytes/s per GetMediaForFragmentList response (kvs-api.md)
BATCHES_KEPT = 10000  # sizes of the last GetMediaForFragmentList calls kept in the counters
CONCURRENT = {"GetMediaForFragmentList": 5, "GetMedia": 3, "PutMedia": 1}

FAULT_KEYS = {"error_rate": float, "throttle_rate": float, "latency_ms": float, "reset_rate": float,
              "slow_rate": float, "error_next": int, "throttle_next": int, "reset_next": int, "slow_next": int,
              "reset_after_bytes": int, "slow_chunk_bytes": int, "slow_delay_ms": float, "error_status": int,
              "deny_rate": float, "deny_next": int, "error_type": str, "error_message": str}


class Config:
    def __init__(self, **kw):
        self.data = kw.get("data")
        self.host = kw.get("host", "127.0.0.1")
        self.port = kw.get("port", 0)
        self.port_file = kw.get("port_file")
        self.access_key = kw.get("access_key") or os.environ.get("KVS_LOCAL_ACCESS_KEY", "AKIDKVSLOCAL")
        self.secret_key = kw.get("secret_key") or os.environ.get("KVS_LOCAL_SECRET_KEY", "kvslocalsecret")
        self.session_token = kw.get("session_token")
        self.region = kw.get("region", "us-east-1")
        self.quotas = not kw.get("no_quotas", False)
        self.sort_fragments = kw.get("sort_fragments", False)
        self.retention_semantics = kw.get("retention_semantics", "delta")
        self.creating_seconds = kw.get("creating_seconds", 0.0)
        self.getmedia_idle_seconds = kw.get("getmedia_idle_seconds", 3.0)
        self.idle_ack_seconds = kw.get("idle_ack_seconds", 3.0)
        self.putmedia_timeout_seconds = kw.get("putmedia_timeout_seconds", 30.0)
        # PutMedia's documented per-stream ingest limits (12.5 MB/s, 5 fragments/s), enforced by
        # back-pressure (the body is read no faster; counted as "paced"): off by default, so that
        # seeding large archives stays fast
        self.putmedia_rate_limits = kw.get("putmedia_rate_limits", False)
        self.max_streams = kw.get("max_streams", 10000)
        # test switch: add this many bytes to every FragmentSizeInBytes (clients must not rely on it)
        self.fragment_size_skew = kw.get("fragment_size_skew", 0)
        # test switch: {APIName or "*": URL} that GetDataEndpoint returns instead of the server's
        # own URL (e.g. a closed port, to make a data endpoint unreachable); {} = normal
        self.data_endpoints = kw.get("data_endpoints") or {}
        self.no_auth = kw.get("no_auth", False)
        # bytes per second of each GetMediaForFragmentList response while quotas are on (the
        # documented 25 MB/s per response); 0 = unlimited
        mb = kw.get("media_bandwidth")
        self.media_bandwidth = MEDIA_BANDWIDTH if mb is None else mb
        # IAM-like deny rules: {(access key or "*", API)}; a denied call gets AccessDeniedException
        self.deny = set()
        for rule in kw.get("deny") or []:
            self.deny.add(parse_deny_rule(rule))


class Ctx:
    """Per-request context handed to API handlers (and to MEDIA's streaming.py)."""

    def __init__(self, server, method="POST", headers=None, path=""):
        self.store = server.store
        self.base_url = server.base_url
        self.log = log
        self.data_dir = server.config.data
        self.quotas_enabled = server.config.quotas
        self.config = server.config
        self.method = method
        self.headers = headers or {}
        self.path = path
        self.server = server

    @staticmethod
    def now() -> float:
        return time.time()


def parse_deny_rule(rule: str) -> tuple[str, str]:
    """'AKID:ListFragments', '*:GetClip' or 'AKID:kinesisvideo:GetClip' -> (key, API)."""
    key, _, action = rule.partition(":")
    action = action.split(":")[-1]
    if not key or not action:
        raise ValueError(f"deny rule {rule!r}: expected ACCESSKEY:Action")
    return key, action


def parse_fault_spec(spec: str) -> tuple[str, dict]:
    """'API:key=value,key=value' (API may be '*')."""
    api, _, rest = spec.partition(":")
    d = {}
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        if k not in FAULT_KEYS:
            raise ValueError(f"unknown fault key {k}")
        d[k] = FAULT_KEYS[k](v)
    return api or "*", d


class KvsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, config: Config):
        self.config = config
        os.makedirs(config.data, exist_ok=True)
        self.store = Store(config.data, region=config.region, creating_seconds=config.creating_seconds)
        super().__init__((config.host, config.port), Handler)
        self.base_url = f"http://{config.host}:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.windows: dict[tuple, collections.deque] = {}
        self.concurrent: dict[tuple, int] = collections.defaultdict(int)
        self.faults: dict[str, dict] = {}
        self.counters: dict = {}
        self.seeders: dict[str, object] = {}
        self._streaming = None

    # ---------------------------------------------------------- MEDIA module (optional)
    def streaming(self):
        if self._streaming is None:
            from . import streaming  # MEDIA's module
            self._streaming = streaming
        return self._streaming

    # ---------------------------------------------------------- counters
    def _counter(self, api: str) -> dict:
        return self.counters.setdefault(api, {"total": 0, "errors": 0, "throttled": 0, "paced": 0,
                                              "streams": {}})

    def record_batch(self, n: int):
        """Keeps the fragment count of a GetMediaForFragmentList call (counters' "batches")."""
        with self.lock:
            b = self._counter("GetMediaForFragmentList").setdefault("batches", [])
            b.append(n)
            del b[:-BATCHES_KEPT]

    def media_rate(self, api: str) -> float:
        """Bytes per second a response body of api may be sent at (0: unlimited)."""
        c = self.config
        if api == "GetMediaForFragmentList" and c.quotas and c.media_bandwidth:
            return float(c.media_bandwidth)
        return 0.0

    def count(self, api: str, stream: str | None, status: int, err_type: str | None = None):
        with self.lock:
            c = self._counter(api)
            c["total"] += 1
            if status >= 400:
                c["errors"] += 1
            if err_type in ("ClientLimitExceededException", "ConnectionLimitExceededException"):
                c["throttled"] += 1
            if stream:
                c["streams"][stream] = c["streams"].get(stream, 0) + 1

    def count_paced(self, api: str):
        with self.lock:
            c = self._counter(api)
            c["paced"] += 1

    # ---------------------------------------------------------- quotas
    def check_tps(self, api: str, stream: str | None, now: float | None = None):
        """now: when the request arrived (its request line was read), as the service counts it;
        a busy server that reaches the check later must not count the time it spent."""
        if not self.config.quotas:
            return
        if now is None:
            now = time.monotonic()
        checks = []
        if stream and api in STREAM_TPS:
            checks.append(((api, stream), STREAM_TPS[api], stream))
        if api in ACCOUNT_TPS:
            checks.append(((api, None), ACCOUNT_TPS[api], self.config.access_key))
        with self.lock:
            for key, limit, res in checks:
                dq = self.windows.setdefault(key, collections.deque())
                while dq and now - dq[0] >= 1.0:
                    dq.popleft()
                if len(dq) >= limit:
                    raise client_limit(api, res)
            for key, _, _ in checks:
                self.windows[key].append(now)

    def acquire_conn(self, api: str, stream: str) -> bool:
        limit = CONCURRENT.get(api)
        if limit is None:
            return False
        if api != "PutMedia" and not self.config.quotas:
            return False
        with self.lock:
            if self.concurrent[(api, stream)] >= limit:
                if api == "GetMediaForFragmentList":
                    raise KvsError(400, "ClientLimitExceededException",
                                   f"Limit exceeded on number of concurrent connections for {api} API for "
                                   f"resource '{stream}'")
                raise KvsError(400, "ConnectionLimitExceededException",
                               f"Limit exceeded on number of connections for {api} API for resource '{stream}'. "
                               f"Maximum allowed: {limit}")
            self.concurrent[(api, stream)] += 1
        return True

    def release_conn(self, api: str, stream: str):
        with self.lock:
            self.concurrent[(api, stream)] -= 1

    # ---------------------------------------------------------- faults
    def fault_for(self, api: str) -> dict:
        with self.lock:
            f = dict(self.faults.get("*", {}))
            f.update(self.faults.get(api, {}))
        return f

    def take(self, api: str, key: str) -> bool:
        """Consumes one 'next N requests' fault if present."""
        with self.lock:
            for k in (api, "*"):
                f = self.faults.get(k)
                if f and f.get(key, 0) > 0:
                    f[key] -= 1
                    return True
        return False


def _arn_name(arn: str) -> str | None:
    parts = arn.split(":stream/", 1)
    if len(parts) == 2:
        return parts[1].split("/")[0]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kvs-local"
    sys_version = ""

    def log_message(self, fmt, *args):  # silence default stderr logging
        pass

    def setup(self):
        super().setup()
        # The status line and headers leave in one send() and the body in another: with Nagle's
        # algorithm the body would wait for the client's delayed ACK of the headers (40 ms on
        # Linux) on every reused connection. The real service shows no such stall.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # ---------------------------------------------------------- plumbing
    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            r = putmedia.ChunkedReader(self.rfile)
            out = bytearray()
            while True:
                d = r.read(65536)
                if not d:
                    break
                out += d
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _rid(self) -> str:
        if not getattr(self, "request_id", None):
            self.request_id = str(uuid.uuid4())
        return self.request_id

    def send_json(self, status: int, obj, extra=None):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", self._rid())
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_error_obj(self, e: KvsError):
        self.status = e.status
        self.err_type = e.type_
        if getattr(e, "lower_message", False):
            body = {"message": e.message}
        elif not e.type_:  # an injected error without a type (as a proxy's bare 404)
            return self.send_json(e.status, {"message": e.message})
        else:
            body = {"Message": e.message, "__type": e.type_}
        self.send_json(e.status, body, {"x-amzn-ErrorType": e.type_})

    def _reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _write_body(self, data: bytes, fault: dict, state: dict, chunked: bool):
        """Writes body bytes, applying reset-mid-body and slow-body faults."""
        if state.get("reset_at") is not None:
            left = state["reset_at"] - state["sent"]
            if left <= len(data):
                part = data[:max(0, left)]
                if part:
                    self.wfile.write((b"%x\r\n" % len(part) + part) if chunked else part)
                raise ConnectionResetError("fault: reset mid-body")
        pieces = [data]
        if state.get("slow"):
            cs = int(fault.get("slow_chunk_bytes", 4096))
            pieces = [data[i:i + cs] for i in range(0, len(data), cs)]
        for p in pieces:
            if not p:
                continue
            if chunked:
                self.wfile.write(b"%x\r\n" % len(p) + p + b"\r\n")
            else:
                self.wfile.write(p)
            state["sent"] += len(p)
            if state.get("rate"):
                # bandwidth limit: never ahead of rate bytes per second since the first byte
                state["paced"] = True
                ahead = state["sent"] / state["rate"] - (time.monotonic() - state["t0"])
                if ahead > 0:
                    time.sleep(ahead)
            if state.get("slow"):
                time.sleep(float(fault.get("slow_delay_ms", 50)) / 1000.0)

    def send_result(self, status: int, headers: dict, body, api: str, fault: dict):
        self.status = status
        state = {"sent": 0, "reset_at": None, "rate": self.server.media_rate(api), "t0": time.monotonic(),
                 "slow": self.server.take(api, "slow_next") or random.random() < fault.get("slow_rate", 0)}
        do_reset = self.server.take(api, "reset_next") or random.random() < fault.get("reset_rate", 0)
        is_bytes = isinstance(body, (bytes, bytearray))
        if do_reset:
            if "reset_after_bytes" in fault:
                state["reset_at"] = int(fault["reset_after_bytes"])
            else:
                state["reset_at"] = len(body) // 2 if is_bytes else 32768
        self.send_response(status)
        hk = {k.lower() for k in headers}
        for k, v in headers.items():
            self.send_header(k, v)
        if "x-amzn-requestid" not in hk:
            self.send_header("x-amzn-RequestId", self._rid())
        try:
            if is_bytes:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self._write_body(bytes(body), fault, state, False)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in body:
                    if chunk:
                        self._write_body(chunk, fault, state, True)
                self.wfile.write(b"0\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, OSError) as e:
            log.debug("body of %s aborted: %s", api, e)
            self._reset()
        finally:
            if state.get("paced"):
                with self.server.lock:
                    c = self.server._counter(api)
                    c["paced"] = c.get("paced", 0) + 1
            if hasattr(body, "close"):
                try:
                    body.close()
                except Exception:
                    pass

    def _loopback(self) -> bool:
        return self.client_address[0] in ("127.0.0.1", "::1", "::ffff:127.0.0.1")

    # ---------------------------------------------------------- entry points
    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def _dispatch(self, method: str):
        t0 = self.arrived = time.monotonic()
        self.request_id = None
        self.status = 0
        self.err_type = None
        self.api = None
        self.stream_key = None
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        try:
            if path.startswith("/_admin/"):
                self._admin(method, path, u.query)
            elif path.startswith("/hls/") or path.startswith("/dash/"):
                self._media_get(method, path, u.query)
            elif method == "POST" and path == "/putMedia":
                self._put_media(u)
            elif method == "POST" and (path in CONTROL_PATHS or path in ARCHIVE_PATHS or path in MEDIA_PATHS):
                self._json_api(path, u)
            else:
                self._read_body()
                self.send_error_obj(KvsError(404, "UnknownOperationException", f"Unknown operation {method} {path}"))
        except KvsError as e:
            if path == "/putMedia":
                self.close_connection = True  # the unread request body must not be parsed as a request
            try:
                self.send_error_obj(e)
            except OSError:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # pragma: no cover - last resort
            log.exception("internal error")
            try:
                self.send_error_obj(KvsError(500, "InternalFailure", f"Internal error: {e}"))
            except OSError:
                self.close_connection = True
        finally:
            if self.api:
                self.server.count(self.api, self.stream_key, self.status or 0, self.err_type)
            log.debug("%s %s api=%s stream=%s status=%s %.1fms", method, path, self.api, self.stream_key,
                      self.status, (time.monotonic() - t0) * 1000)

    # ---------------------------------------------------------- common pre-handler steps
    def _auth(self, u, body):
        if self.server.config.no_auth:
            return
        cfg = self.server.config
        sigv4.verify(self.command, u.path, u.query, list(self.headers.items()), body,
                     {cfg.access_key: cfg.secret_key}, cfg.region, session_token=cfg.session_token, log=log)

    def _access_key(self) -> str:
        m = re.search(r"Credential=([^/,\s]+)/", self.headers.get("Authorization") or "")
        return m.group(1) if m else ""

    def _check_deny(self, api: str):
        deny = self.server.config.deny
        if deny and ((self._access_key(), api) in deny or ("*", api) in deny):
            res = self.stream_key or "*"
            raise KvsError(403, "AccessDeniedException",
                           f"User: arn:aws:iam::123456789012:user/kvs-local is not authorized to perform: "
                           f"kinesisvideo:{api} on resource: {res} with an explicit deny")

    def _faults_before(self, api: str) -> dict:
        self._check_deny(api)
        f = self.server.fault_for(api)
        if f.get("latency_ms"):
            time.sleep(f["latency_ms"] / 1000.0)
        if self.server.take(api, "throttle_next") or random.random() < f.get("throttle_rate", 0):
            raise client_limit(api, self.stream_key or self.server.config.access_key)
        if self.server.take(api, "deny_next") or random.random() < f.get("deny_rate", 0):
            res = self.stream_key or "*"
            raise KvsError(401, "NotAuthorizedException",
                           f"User: arn:aws:iam::123456789012:user/kvs-local is not authorized to perform: "
                           f"kinesisvideo:{api} on resource: {res}")
        if self.server.take(api, "error_next") or random.random() < f.get("error_rate", 0):
            st = int(f.get("error_status", 500))
            default = {500: "InternalFailure", 404: "ResourceNotFoundException"}.get(
                st, "ServiceUnavailableException")
            raise KvsError(st, f.get("error_type", default),
                           f.get("error_message", "Injected failure (kvs-local fault injection)."))
        return f

    def _json_api(self, path: str, u):
        body = self._read_body()
        api = CONTROL_PATHS.get(path) or ARCHIVE_PATHS.get(path) or MEDIA_PATHS.get(path)
        self.api = api
        try:
            req = json.loads(body or b"{}")
            bad_json = not isinstance(req, dict)
        except ValueError:
            bad_json = True
        if bad_json:
            req = {}
        self.stream_key = req.get("StreamName") if isinstance(req.get("StreamName"), str) else (
            _arn_name(req["StreamARN"]) if isinstance(req.get("StreamARN"), str) else None)
        self._auth(u, body)
        if bad_json:
            raise KvsError(400, "SerializationException", "Malformed JSON request body")
        fault = self._faults_before(api)
        self.server.check_tps(api, self.stream_key, self.arrived)
        ctx = Ctx(self.server, "POST", dict(self.headers.items()), path)
        conn = self.server.acquire_conn(api, self.stream_key) if self.stream_key else False
        released = False
        try:
            if api in control.HANDLERS:
                res = control.HANDLERS[api](ctx, req)
                self.send_result(200, {"Content-Type": "application/json"},
                                 json.dumps(res, separators=(",", ":")).encode(), api, fault)
                return
            if api in archive.HANDLERS:
                res = archive.HANDLERS[api](ctx, req)
            else:
                res = self.server.streaming().handle_api(ctx, api, req)
            if isinstance(res, dict):
                self.send_result(200, {"Content-Type": "application/json"},
                                 json.dumps(res, separators=(",", ":")).encode(), api, fault)
            else:
                status, headers, rbody = res
                self.send_result(status, headers, rbody, api, fault)
        finally:
            if conn and not released:
                self.server.release_conn(api, self.stream_key)

    def _media_get(self, method: str, path: str, query: str):
        api = os.path.basename(path).split(".")[0]
        api = api[:1].upper() + api[1:]
        self.api = api
        fault = self._faults_before(api)
        ctx = Ctx(self.server, method, dict(self.headers.items()), path)
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        status, headers, body = self.server.streaming().handle_get(ctx, path, q)
        self.send_result(status, headers, body, api, fault)

    # ---------------------------------------------------------- PutMedia
    def _put_media(self, u):
        self.api = "PutMedia"
        h = self.headers
        name = h.get("x-amzn-stream-name")
        arn = h.get("x-amzn-stream-arn")
        self.stream_key = name or (_arn_name(arn) if arn else None)
        self._auth(u, None)
        self._faults_before("PutMedia")
        if bool(name) == bool(arn):
            raise KvsError(400, "InvalidArgumentException",
                           "Exactly one of x-amzn-stream-name and x-amzn-stream-arn must be specified.")
        stream = self.server.store.get_stream(name, arn)
        self.stream_key = stream.name
        tc_type = (h.get("x-amzn-fragment-timecode-type") or "").upper()
        if tc_type not in ("ABSOLUTE", "RELATIVE"):
            raise KvsError(400, "InvalidArgumentException",
                           "x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE.")
        start_s = h.get("x-amzn-producer-start-timestamp")
        try:
            start_ts = float(start_s) if start_s else time.time()
        except ValueError:
            raise KvsError(400, "InvalidArgumentException", f"Invalid x-amzn-producer-start-timestamp {start_s}")
        if stream.status != "ACTIVE":
            raise KvsError(400, "ResourceInUseException", f"The stream {stream.name} is not ACTIVE.")
        self.server.check_tps("PutMedia", stream.name)
        self.server.acquire_conn("PutMedia", stream.name)
        try:
            self._put_media_stream(stream, tc_type, start_ts)
        finally:
            self.server.release_conn("PutMedia", stream.name)

    def _put_media_stream(self, stream, tc_type, start_ts):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        raw = putmedia.ChunkedReader(self.rfile) if "chunked" in te else \
            putmedia.LimitedReader(self.rfile, int(self.headers.get("Content-Length") or 0))
        self.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", self._rid())
        self.end_headers()
        wlock = threading.Lock()
        closed = threading.Event()
        state = {"last": time.monotonic()}

        def send_ack(d):
            line = (json.dumps(d, separators=(",", ":")) + "\n").encode()
            with wlock:
                if closed.is_set():
                    return
                try:
                    self.wfile.write(b"%x\r\n" % len(line) + line + b"\r\n")
                except OSError:
                    closed.set()

        cfg = self.server.config
        srv = self.server

        def on_data(n):
            state["last"] = now = time.monotonic()
            if not cfg.putmedia_rate_limits:
                return
            if now - state.get("win", 0.0) >= 1.0:
                state["win"], state["win_bytes"] = now, 0
            state["win_bytes"] += n
            if state["win_bytes"] > putmedia.MAX_BYTES_PER_S:  # over 12.5 MB in this second
                srv.count_paced("PutMedia")
                time.sleep(max(0.0, state["win"] + 1.0 - now))
                state["win"], state["win_bytes"] = time.monotonic(), 0

        def idle_loop():
            while not closed.wait(min(cfg.idle_ack_seconds, 1.0)):
                quiet = time.monotonic() - state["last"]
                if quiet >= cfg.putmedia_timeout_seconds:
                    log.info("PutMedia %s: no data for %.0f s, closing", stream.name, quiet)
                    closed.set()
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if quiet >= cfg.idle_ack_seconds and time.monotonic() - state.get("idle_sent", 0) >= cfg.idle_ack_seconds:
                    state["idle_sent"] = time.monotonic()
                    send_ack({"EventType": "IDLE"})

        idle = threading.Thread(target=idle_loop, daemon=True)
        idle.start()
        starts = collections.deque()

        def pace_fragment():
            # at most 5 fragments begin in any second: wait for the oldest of the last 5 to age
            if not cfg.putmedia_rate_limits:
                return
            now = time.monotonic()
            if len(starts) >= putmedia.MAX_FRAGMENTS_PER_S and now - starts[0] < 1.0:
                srv.count_paced("PutMedia")
                time.sleep(1.0 - (now - starts[0]))
            starts.append(time.monotonic())
            while len(starts) > putmedia.MAX_FRAGMENTS_PER_S:
                starts.popleft()

        ingest = putmedia.Ingest(Ctx(self.server, "POST", {}, "/putMedia"), stream, tc_type, start_ts, send_ack,
                                 pace_fragment)
        ok = True
        try:
            ingest.run(mkv.StreamReader(raw, on_data))
        except mkv.MkvError:
            ok = False
        except OSError:
            ok = False
        finally:
            with wlock:
                was_closed = closed.is_set()
                closed.set()
                if not was_closed:
                    try:
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        ok = False
            idle.join(timeout=2)
        log.debug("PutMedia %s: %d fragments stored, %d errors", stream.name, ingest.fragments, ingest.errors)
        if not ok or was_closed:
            self.close_connection = True

    # ---------------------------------------------------------- admin
    def _admin(self, method: str, path: str, query: str):
        if not self._loopback():
            raise KvsError(403, "AccessDeniedException", "admin endpoint is loopback only")
        body = self._read_body() if method == "POST" else b""
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            raise KvsError(400, "InvalidArgumentException", "admin: malformed JSON")
        srv = self.server
        sub = path[len("/_admin/"):].strip("/")
        if sub == "health":
            return self.send_json(200, {"ok": True, "url": srv.base_url})
        if sub == "counters" and method == "GET":
            with srv.lock:
                return self.send_json(200, json.loads(json.dumps(srv.counters)))
        if sub == "counters/reset" and method == "POST":
            with srv.lock:
                srv.counters.clear()
            return self.send_json(200, {"ok": True})
        if sub == "faults" and method == "GET":
            with srv.lock:
                return self.send_json(200, json.loads(json.dumps(srv.faults)))
        if sub == "faults" and method == "POST":
            with srv.lock:
                if req.pop("clear", False):
                    srv.faults.clear()
                for api, spec in req.items():
                    if not isinstance(spec, dict):
                        raise KvsError(400, "InvalidArgumentException", f"admin: fault spec for {api} must be an object")
                    bad = set(spec) - set(FAULT_KEYS)
                    if bad:
                        raise KvsError(400, "InvalidArgumentException", f"admin: unknown fault keys {sorted(bad)}")
                    if not spec:
                        srv.faults.pop(api, None)
                    else:
                        srv.faults.setdefault(api, {}).update(spec)
                return self.send_json(200, json.loads(json.dumps(srv.faults)))
        if sub == "config":
            if method == "POST":
                for k, attr in (("quotas", "quotas"), ("sort_fragments", "sort_fragments"),
                                ("putmedia_rate_limits", "putmedia_rate_limits"),
                                ("retention_semantics", "retention_semantics"),
                                ("getmedia_idle_seconds", "getmedia_idle_seconds"),
                                ("fragment_size_skew", "fragment_size_skew"),
                                ("data_endpoints", "data_endpoints"),
                                ("media_bandwidth", "media_bandwidth")):
                    if k in req:
                        if k == "data_endpoints" and not isinstance(req[k] or {}, dict):
                            raise KvsError(400, "InvalidArgumentException",
                                           "admin: data_endpoints must be an object")
                        setattr(srv.config, attr, (req[k] or {}) if k == "data_endpoints" else req[k])
                if "deny" in req:
                    try:
                        srv.config.deny = {parse_deny_rule(r) for r in (req["deny"] or [])}
                    except (ValueError, TypeError, AttributeError) as e:
                        raise KvsError(400, "InvalidArgumentException", f"admin: {e}")
                with srv.lock:
                    srv.windows.clear()
            c = srv.config
            return self.send_json(200, {"quotas": c.quotas, "sort_fragments": c.sort_fragments,
                                        "retention_semantics": c.retention_semantics,
                                        "getmedia_idle_seconds": c.getmedia_idle_seconds,
                                        "fragment_size_skew": c.fragment_size_skew,
                                        "data_endpoints": c.data_endpoints,
                                        "media_bandwidth": c.media_bandwidth,
                                        "deny": sorted(f"{k}:{a}" for k, a in c.deny),
                                        "region": c.region, "url": srv.base_url})
        if sub == "seed" and method == "POST":
            from . import seed
            return self.send_json(200, seed.admin_seed(srv, req))
        if sub == "seed/stop" and method == "POST":
            from . import seed
            return self.send_json(200, seed.admin_seed_stop(srv, req))
        if sub == "streams" and method == "GET":
            return self.send_json(200, {"streams": [
                {"name": s.name, "fragments": srv.store.count_fragments(s), "retention_hours": s.retention_hours}
                for s in srv.store.list_streams()]})
        raise KvsError(404, "ResourceNotFoundException", f"admin: unknown endpoint {method} {path}")


# -------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvs-local", description="Local Kinesis Video Streams compatible server")
    p.add_argument("--data", required=True, help="data directory (sqlite index + media files)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--port-file", help="write the bound port to this file once listening")
    p.add_argument("--access-key", default=None)
    p.add_argument("--secret-key", default=None)
    p.add_argument("--session-token", default=None, help="accept (and require) this session token")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--no-quotas", action="store_true", help="disable TPS and connection quotas")
    p.add_argument("--media-bandwidth", type=int, default=MEDIA_BANDWIDTH, metavar="BYTES_PER_S",
                   help="GetMediaForFragmentList response rate while quotas are on (default 25000000; "
                        "0: unlimited)")
    p.add_argument("--sort-fragments", action="store_true", help="debug: ListFragments results sorted")
    p.add_argument("--fault", action="append", default=[], metavar="API:key=val,...",
                   help="fault injection, e.g. ListFragments:error_rate=0.2 or '*:latency_ms=50'")
    p.add_argument("--retention-semantics", choices=["delta", "replace"], default="delta",
                   help="UpdateDataRetention: add/subtract (default) or replace")
    p.add_argument("--creating-seconds", type=float, default=0.0,
                   help="new streams stay CREATING this long (default 0: ACTIVE at once)")
    p.add_argument("--getmedia-idle-seconds", type=float, default=3.0,
                   help="GetMedia ends the body after this long without new fragments")
    p.add_argument("--idle-ack-seconds", type=float, default=3.0)
    p.add_argument("--putmedia-timeout-seconds", type=float, default=30.0)
    p.add_argument("--putmedia-rate-limits", action="store_true",
                   help="enforce PutMedia's 12.5 MB/s and 5 fragments/s per stream by back-pressure")
    p.add_argument("--max-streams", type=int, default=10000,
                   help="CreateStream answers AccountStreamLimitExceededException beyond this many streams")
    p.add_argument("--no-auth", action="store_true", help="skip SigV4 verification (debug)")
    p.add_argument("--deny", action="append", default=[], metavar="ACCESSKEY:Action",
                   help="answer AccessDeniedException to this key's calls of this API ('*' for any key)")
    p.add_argument("--log-level", default="INFO")
    return p


def serve(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = Config(**vars(args))
    srv = KvsServer(cfg)
    for spec in args.fault:
        api, d = parse_fault_spec(spec)
        srv.faults.setdefault(api, {}).update(d)
    import signal

    def _term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _term)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    log.info("kvs-local listening on %s (data %s)", srv.base_url, cfg.data)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
        srv.store.close()
