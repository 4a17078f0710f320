"""A fault-injecting HTTP/1.1 reverse proxy to put in front of the local S3 gateway.

    from s3_local import FaultProxy, start_rgw

    with FaultProxy(rgw.endpoint) as proxy:            # listens on 127.0.0.1:<free port>
        s3 = rgw.s3(proxy.endpoint)                    # clients sign for the proxy's host:port
        proxy.fail_next(2)                             # next 2 requests: 503 ServiceUnavailable
        proxy.fail(kind="UploadPart", times=None)      # every UploadPart: 503, until cleared
        proxy.fail(method="POST", query="uploadId=")   # CompleteMultipartUpload, once
        proxy.reset_after(1 << 20, kind="UploadPart")  # forward 1 MiB of the body, then RST
        rule = proxy.hold(kind="PutObject")            # matching requests wait at the proxy...
        proxy.release(rule)                            # ...until released, then go through
        proxy.pass_through()                           # drop every rule
        proxy.counts["UploadPart"], proxy.faults["UploadPart"], proxy.log[-1]
        proxy.wait_for("UploadPart", 2, timeout=30)   # True once 2 UploadParts were seen

Requests are forwarded verbatim: request line, every header (Host included, so the client's SigV4
signature, made for the proxy's host:port, still holds: RGW checks the signature against the Host
header it receives) and the body, streamed in 64 KiB blocks (Content-Length or chunked bodies, and
"Expect: 100-continue" handled), never buffered whole. Responses are streamed back the same way.
Each client connection gets its own upstream connection, kept alive as long as both sides do.

Rules are tried in the order they were added; the first matching one with uses left acts:
  * error: answer STATUS (503) with an S3 XML error body <Error><Code>CODE</Code>...; nothing is
    forwarded. The request body is read and dropped first (or, with Expect: 100-continue, not
    awaited and the connection is closed), so the client sees the error, not a broken pipe.
  * reset: forward the request head and the first NBYTES bytes of its body (bytes as sent on
    the wire: with chunked encoding, the chunk framing counts), then reset the client connection
    (TCP RST) and close the upstream one, as a network failure mid-upload would. When NBYTES is
    at least the body's size, the whole request reaches the server, the proxy waits for the
    server's answer (Seen.status; the server has acted) and the client gets a reset instead.
  * hold: the request waits at the proxy, nothing forwarded (rule.waiting counts the requests
    waiting), until release(rule) (or pass_through/close), then goes through unchanged; its
    Seen.status stays None until the server answered. Shows what a client does while one of
    its requests is in flight. Keep holds short: clients time out stalled transfers.
Matching: kind (the S3 operation: see classify()), method, query (substring of the raw query
string, e.g. "partNumber=" or "uploads"), path (substring), or any callable match(req) -> bool;
all given criteria must hold. times: how many requests the rule acts on (None: until removed).

Counters: counts[kind] (requests seen, faulted ones included), faults[kind] (requests a rule acted
on), log (a list of Seen records). Path-style requests only (kvsfs and Rgw.s3() use path-style).
"""
from __future__ import annotations

import collections
import dataclasses
import select
import socket
import socketserver
import threading
import time
import urllib.parse
from typing import Callable, Optional

BLOCK = 64 * 1024
MAX_LINE = 64 * 1024
IO_TIMEOUT = 120


@dataclasses.dataclass
class Request:
    method: str
    target: str          # as sent: /bucket/key?query
    path: str
    query: str
    headers: list        # [(name, value)] in order
    kind: str

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


@dataclasses.dataclass
class Seen:
    """One request as the proxy saw it. action: "forward", "error", "reset" or "hold" (held,
    then forwarded); status: the upstream's or the injected status code (None when the
    connection was reset or failed, or while the request is in flight); body_bytes: request
    body bytes forwarded upstream."""
    method: str
    target: str
    kind: str
    action: str = "forward"
    status: Optional[int] = None
    body_bytes: int = 0
    time: float = 0.0


@dataclasses.dataclass
class Rule:
    action: str                         # "error", "reset" or "hold"
    kind: Optional[str] = None
    method: Optional[str] = None
    query: Optional[str] = None
    path: Optional[str] = None
    match: Optional[Callable[[Request], bool]] = None
    times: Optional[int] = 1            # None: unlimited
    status: int = 503
    code: str = "ServiceUnavailable"
    message: str = "Service unavailable (injected by the test proxy)"
    nbytes: int = 0                     # reset: body bytes to forward first
    used: int = 0
    event: Optional[threading.Event] = None   # hold: set by release()
    waiting: int = 0                    # hold: requests waiting now

    def matches(self, req: Request) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.kind is not None and req.kind != self.kind:
            return False
        if self.method is not None and req.method.upper() != self.method.upper():
            return False
        if self.query is not None and self.query not in req.query:
            return False
        if self.path is not None and self.path not in req.path:
            return False
        if self.match is not None and not self.match(req):
            return False
        return True


def classify(method: str, target: str, headers=()) -> str:
    """The S3 operation of a path-style request: ListBuckets, CreateBucket, HeadBucket,
    DeleteBucket, ListObjects, ListObjectsV2, ListMultipartUploads, DeleteObjects, PutObject,
    CopyObject, GetObject, HeadObject, DeleteObject, CreateMultipartUpload, UploadPart,
    UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload, ListParts; otherwise
    "METHOD bucket?sub" / "METHOD object?sub" (e.g. "GET bucket?location")."""
    method = method.upper()
    parts = urllib.parse.urlsplit(target)
    params = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    copy = any(k.lower() == "x-amz-copy-source" for k, _ in headers)
    segs = parts.path.lstrip("/").split("/", 1)
    bucket = segs[0]
    key = segs[1] if len(segs) > 1 else ""
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if not key:
        if method == "GET":
            if "uploads" in params:
                return "ListMultipartUploads"
            if params.get("list-type") == ["2"]:
                return "ListObjectsV2"
            sub = [k for k in params if k not in ("prefix", "delimiter", "marker", "max-keys",
                                                    "encoding-type")]
            return "ListObjects" if not sub else f"GET bucket?{sub[0]}"
        if method == "POST" and "delete" in params:
            return "DeleteObjects"
        if params:
            return f"{method} bucket?{next(iter(params))}"
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(
            method, f"{method} bucket")
    upload = "uploadId" in params
    if method == "PUT":
        if "partNumber" in params and upload:
            return "UploadPartCopy" if copy else "UploadPart"
        if not params:
            return "CopyObject" if copy else "PutObject"
    elif method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if upload:
            return "CompleteMultipartUpload"
    elif method == "DELETE":
        if upload:
            return "AbortMultipartUpload"
        if not params:
            return "DeleteObject"
    elif method in ("GET", "HEAD"):
        if upload:
            return "ListParts"
        sub = [k for k in params if not k.startswith("response-") and k not in ("partNumber", "versionId")]
        if not sub:
            return "GetObject" if method == "GET" else "HeadObject"
    return f"{method} object?{next(iter(params))}" if params else f"{method} object"


class _Reset(Exception):
    pass


class _ClientGone(Exception):
    pass


def _error_body(code: str, message: str, resource: str, rid: str) -> bytes:
    esc = lambda s: (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{esc(code)}</Code>'
            f"<Message>{esc(message)}</Message><Resource>{esc(resource)}</Resource>"
            f"<RequestId>{rid}</RequestId></Error>").encode()


class FaultProxy:
    """See the module docstring. FaultProxy(upstream_url) starts listening at once."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (u.hostname, u.port or 80)
        self._lock = threading.Lock()
        self._seen_cond = threading.Condition(self._lock)
        self.rules: list[Rule] = []
        self.counts: collections.Counter = collections.Counter()
        self.faults: collections.Counter = collections.Counter()
        self.log: list[Seen] = []
        self._seq = 0
        self._server = _Server((host, port), _Handler)
        self._server.proxy = self
        self.host, self.port = self._server.server_address[:2]
        self.endpoint = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"FaultProxy:{self.port}", daemon=True)
        self._thread.start()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and drop every open connection."""
        self.pass_through()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        self._thread.join(5)

    # --- rules -------------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(self, *, kind=None, method=None, query=None, path=None, match=None,
             times: Optional[int] = 1, status: int = 503, code: str = "ServiceUnavailable",
             message: str = "Service unavailable (injected by the test proxy)") -> Rule:
        """Answer matching requests with STATUS and an S3 XML error (times=None: always)."""
        return self.add(Rule("error", kind=kind, method=method, query=query, path=path,
                             match=match, times=times, status=status, code=code, message=message))

    def fail_next(self, n: int = 1, **kw) -> Rule:
        """Answer the next N (matching) requests with 503 ServiceUnavailable."""
        return self.fail(times=n, **kw)

    def reset_after(self, nbytes: int, *, kind=None, method=None, query=None, path=None,
                    match=None, times: Optional[int] = 1) -> Rule:
        """Forward NBYTES of a matching request's body, then reset the connection."""
        return self.add(Rule("reset", kind=kind, method=method, query=query, path=path,
                             match=match, times=times, nbytes=nbytes))

    def hold(self, *, kind=None, method=None, query=None, path=None, match=None,
             times: Optional[int] = None) -> Rule:
        """Matching requests wait at the proxy until release(rule), then go through."""
        return self.add(Rule("hold", kind=kind, method=method, query=query, path=path,
                             match=match, times=times, event=threading.Event()))

    def release(self, rule: Rule) -> None:
        """Let the requests held by RULE (and later ones) go through; the rule is removed."""
        self.remove(rule)
        rule.event.set()

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)

    def pass_through(self) -> None:
        """Drop every rule: forward everything (held requests go through)."""
        with self._lock:
            rules, self.rules = self.rules, []
        for r in rules:
            if r.event is not None:
                r.event.set()

    def reset_counters(self) -> None:
        with self._lock:
            self.counts.clear()
            self.faults.clear()
            self.log.clear()

    def wait_for(self, kind: Optional[str], count: int = 1, timeout: float = 30) -> bool:
        """Wait until COUNT requests of KIND (None: any) have been seen; False on timeout.
        E.g. wait for kvsfs's 2nd UploadPart, then stop the gateway."""
        deadline = time.monotonic() + timeout
        with self._seen_cond:
            while self.count_unlocked(kind) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._seen_cond.wait(left)
            return True

    def count_unlocked(self, kind: Optional[str]) -> int:
        return sum(self.counts.values()) if kind is None else self.counts[kind]

    def count(self, kind: Optional[str] = None) -> int:
        with self._lock:
            return sum(self.counts.values()) if kind is None else self.counts[kind]

    # --- used by the handler -----------------------------------------------------------------
    def _decide(self, req: Request) -> tuple[Optional[Rule], Seen]:
        with self._lock:
            self._seq += 1
            seen = Seen(req.method, req.target, req.kind, time=time.time())
            self.counts[req.kind] += 1
            self.log.append(seen)
            self._seen_cond.notify_all()
            for rule in self.rules:
                if rule.matches(req):
                    rule.used += 1
                    self.faults[req.kind] += 1
                    seen.action = rule.action
                    return rule, seen
            return None, seen


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    proxy: FaultProxy

    def __init__(self, *a, **kw):
        self._socks: set = set()
        self._socks_lock = threading.Lock()
        super().__init__(*a, **kw)

    def track(self, s, add: bool) -> None:
        with self._socks_lock:
            (self._socks.add if add else self._socks.discard)(s)

    def close_all(self) -> None:
        with self._socks_lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _read_line(f) -> bytes:
    line = f.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise _ClientGone("line too long")
    return line


def _read_head(f) -> Optional[list[bytes]]:
    """Start line + header lines (raw, with CRLF), without the blank line; None at EOF."""
    line = _read_line(f)
    while line in (b"\r\n", b"\n"):       # tolerate stray CRLF between requests
        line = _read_line(f)
    if not line:
        return None
    lines = [line]
    while True:
        line = _read_line(f)
        if not line:
            raise _ClientGone("EOF in headers")
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)


def _parse_headers(lines: list[bytes]) -> list[tuple[str, str]]:
    out = []
    for raw in lines[1:]:
        k, _, v = raw.decode("latin-1").partition(":")
        out.append((k.strip(), v.strip()))
    return out


def _hget(headers, name: str) -> Optional[str]:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class _Sink:
    """Writes a body to a socket with an optional byte budget (then raises _Reset)."""

    def __init__(self, sock: Optional[socket.socket], budget: Optional[int]):
        self.sock, self.budget, self.sent = sock, budget, 0

    def write(self, data: bytes) -> None:
        if self.budget is not None and self.sent + len(data) > self.budget:
            part = data[: self.budget - self.sent]
            if part and self.sock is not None:
                self.sock.sendall(part)
            self.sent += len(part)
            raise _Reset()
        if self.sock is not None and data:
            self.sock.sendall(data)
        self.sent += len(data)


def _copy_body(src, sink: _Sink, headers, *, response_no_body: bool = False,
               until_eof: bool = False) -> None:
    """Copy one HTTP message body from file SRC to SINK, framing bytes included."""
    if response_no_body:
        return
    te = (_hget(headers, "Transfer-Encoding") or "").lower()
    if "chunked" in te:
        while True:
            line = _read_line(src)
            if not line:
                raise _ClientGone("EOF in chunked body")
            sink.write(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:               # trailers, then the blank line
                    t = _read_line(src)
                    if not t:
                        raise _ClientGone("EOF in trailers")
                    sink.write(t)
                    if t in (b"\r\n", b"\n"):
                        return
            _copy_n(src, sink, size + 2)  # data + CRLF
        return
    cl = _hget(headers, "Content-Length")
    if cl is not None:
        _copy_n(src, sink, int(cl))
    elif until_eof:
        while True:
            data = src.read1(BLOCK)
            if not data:
                return
            sink.write(data)


def _copy_n(src, sink: _Sink, n: int) -> None:
    while n > 0:
        data = src.read1(min(BLOCK, n))
        if not data:
            raise _ClientGone("EOF in body")
        sink.write(data)
        n -= len(data)


class _Handler(socketserver.StreamRequestHandler):
    rbufsize = BLOCK
    timeout = IO_TIMEOUT

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)
        self.up: Optional[socket.socket] = None
        self.up_file = None

    def finish(self):
        self._close_upstream()
        self.server.track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def _close_upstream(self):
        if self.up is not None:
            self.server.track(self.up, False)
            try:
                self.up_file.close()
                self.up.close()
            except OSError:
                pass
            self.up = self.up_file = None

    def _upstream(self) -> socket.socket:
        if self.up is not None and self._upstream_closed():
            self._close_upstream()          # idle keep-alive closed by the server (or it restarted)
        if self.up is None:
            self.up = socket.create_connection(self.server.proxy.upstream, timeout=IO_TIMEOUT)
            self.up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.up_file = self.up.makefile("rb", buffering=BLOCK)
            self.server.track(self.up, True)
        return self.up

    def _upstream_closed(self) -> bool:
        try:
            poller = select.poll()
            poller.register(self.up, select.POLLIN | select.POLLHUP | select.POLLERR)
            readable = poller.poll(0)
        except (OSError, ValueError):
            return True
        # between requests an open connection has nothing to read: readable means EOF (or
        # stray bytes): either way it is not reusable
        return bool(readable)

    def _send_client(self, data: bytes) -> None:
        self.connection.sendall(data)

    def _rst_client(self) -> None:
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def handle(self):
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while self._one_request():
                pass
        except (_ClientGone, OSError, ValueError):
            pass

    def _one_request(self) -> bool:
        """Handle one request; False when the client connection must end."""
        proxy = self.server.proxy
        head = _read_head(self.rfile)
        if head is None:
            return False
        start = head[0].decode("latin-1").rstrip("\r\n")
        try:
            method, target, version = start.split(" ", 2)
        except ValueError:
            self._send_client(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        headers = _parse_headers(head)
        parts = urllib.parse.urlsplit(target)
        req = Request(method, target, parts.path, parts.query, headers,
                      classify(method, target, headers))
        rule, seen = proxy._decide(req)
        expect = (_hget(headers, "Expect") or "").lower() == "100-continue"
        conn_hdr = (_hget(headers, "Connection") or "").lower()
        client_close = "close" in conn_hdr or (version == "HTTP/1.0" and "keep-alive" not in conn_hdr)

        if rule is not None and rule.action == "error":
            return self._inject_error(rule, req, seen, expect, client_close)
        if rule is not None and rule.action == "hold":
            with proxy._lock:
                rule.waiting += 1
            rule.event.wait(IO_TIMEOUT)
            with proxy._lock:
                rule.waiting -= 1
            rule = None

        budget = rule.nbytes if rule is not None else None
        try:
            up = self._upstream()
            up.sendall(b"".join(head) + b"\r\n")
        except OSError:
            self._gateway_down(req, seen)
            return False
        sink = _Sink(up, budget)
        has_body = _hget(headers, "Content-Length") not in (None, "0") or \
            "chunked" in (_hget(headers, "Transfer-Encoding") or "").lower()
        try:
            if expect and has_body:
                # relay the upstream's interim 100 (or its early final answer) first
                status, rhead = self._read_response_head()
                if status != 100:
                    seen.status = status
                    if budget is not None:
                        raise _Reset()
                    self._relay_response(rhead, status, method)
                    return False            # the body was never sent: end the connection
                self._send_client(b"".join(rhead) + b"\r\n")
            body_done = True
            try:
                _copy_body(self.rfile, sink, headers)
            except (_Reset, _ClientGone):
                raise
            except OSError:
                body_done = False           # upstream stopped reading: its answer may follow
            seen.body_bytes = sink.sent
            if budget is not None:          # the whole body went through: the server answers,
                status, rhead = self._read_response_head()   # the client gets a reset instead
                while 100 <= status < 200:
                    status, rhead = self._read_response_head()
                seen.status = status
                raise _Reset()
            while True:
                status, rhead = self._read_response_head()
                if status == 100 and not expect:
                    continue                # unsolicited 100: swallow
                if 100 <= status < 200 and status != 101:
                    self._send_client(b"".join(rhead) + b"\r\n")
                    continue
                break
            seen.status = status
            keep = self._relay_response(rhead, status, method)
            return keep and body_done and not client_close
        except _Reset:
            seen.body_bytes = sink.sent
            self._close_upstream()
            self._rst_client()
            return False
        except (_ClientGone, OSError):
            seen.body_bytes = sink.sent
            if seen.status is None:
                self._gateway_down(req, seen)
            return False

    def _gateway_down(self, req: Request, seen: Seen) -> None:
        """Upstream unreachable or failed before answering: 502 to the client, then close."""
        self._close_upstream()
        body = _error_body("BadGateway", "upstream S3 server unreachable (test proxy)",
                           req.path, "proxy")
        seen.status = 502
        try:
            self._send_client(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/xml\r\n"
                              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        except OSError:
            pass

    def _read_response_head(self) -> tuple[int, list[bytes]]:
        head = _read_head(self.up_file)
        if head is None:
            raise _ClientGone("upstream closed")
        status = int(head[0].split(b" ", 2)[1])
        return status, head

    def _relay_response(self, rhead: list[bytes], status: int, method: str) -> bool:
        """Send the response head and stream its body; True if the connection may be reused."""
        headers = _parse_headers(rhead)
        self._send_client(b"".join(rhead) + b"\r\n")
        no_body = method.upper() == "HEAD" or status in (204, 304)
        framed = _hget(headers, "Content-Length") is not None or \
            "chunked" in (_hget(headers, "Transfer-Encoding") or "").lower()
        _copy_body(self.up_file, _Sink(self.connection, None), headers,
                   response_no_body=no_body, until_eof=not framed)
        conn = (_hget(headers, "Connection") or "").lower()
        if "close" in conn or (not framed and not no_body):
            self._close_upstream()
            return False
        return True

    def _inject_error(self, rule: Rule, req: Request, seen: Seen, expect: bool,
                      client_close: bool) -> bool:
        body = _error_body(rule.code, rule.message, req.path, f"proxy-{id(seen):x}")
        has_body = _hget(req.headers, "Content-Length") not in (None, "0") or \
            "chunked" in (_hget(req.headers, "Transfer-Encoding") or "").lower()
        close = client_close or (expect and has_body)
        if has_body and not expect:
            _copy_body(self.rfile, _Sink(None, None), req.headers)   # drain, not forwarded
        reason = {503: "Service Unavailable", 500: "Internal Server Error",
                  429: "Too Many Requests", 400: "Bad Request"}.get(rule.status, "Error")
        seen.status = rule.status
        hdrs = (f"HTTP/1.1 {rule.status} {reason}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\nx-amz-request-id: proxy-{id(seen):x}\r\n"
                + ("Retry-After: 1\r\n" if rule.status == 503 else "")
                + ("Connection: close\r\n" if close else "") + "\r\n").encode()
        self._send_client(hdrs + (b"" if req.method.upper() == "HEAD" else body))
        return not close
