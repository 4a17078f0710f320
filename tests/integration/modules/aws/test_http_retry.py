"""kvsfs http client (src/aws/http.c) against tiny local HTTP servers, through kvsfs-http.

Each test starts a scripted HTTP/1.1 server on 127.0.0.1 (port 0): every incoming request takes
the next action of its script (the last one repeats), so a test can answer "503, then 200" or
"cut the body mid-way, then send it whole". The server records every request (method, path,
headers, body, client port) so tests can check retries, headers set per attempt, and
connection reuse. kvsfs-http prints its result as JSON (status, attempts, errno, bytes, ...).
"""
import errno
import json
import os
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time

import pytest


class ScriptedServer:
    """HTTP/1.1 server with keep-alive whose answers follow a script of actions."""

    def __init__(self, script, tls_ctx=None):
        self.script = list(script)
        self.requests = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.tls_ctx = tls_ctx
        self.tls_failures = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                sock = self.request
                if outer.tls_ctx is not None:
                    try:
                        sock = outer.tls_ctx.wrap_socket(sock, server_side=True)
                    except (ssl.SSLError, OSError):
                        with outer.lock:
                            outer.tls_failures += 1
                        return
                outer._serve_conn(sock, self.client_address)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path="/obj"):
        scheme = "https" if self.tls_ctx else "http"
        host = "localhost" if self.tls_ctx else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def _next_action(self, req):
        with self.lock:
            self.requests.append(req)
            idx = len(self.requests) - 1
            act = self.script[min(idx, len(self.script) - 1)]
        return act(req) if callable(act) else act

    # -- wire helpers --------------------------------------------------------------------------
    @staticmethod
    def _read_line(f):
        line = f.readline(65537)
        if not line:
            return None
        return line.decode("latin-1").rstrip("\r\n")

    def _read_request(self, f):
        line = self._read_line(f)
        while line == "":
            line = self._read_line(f)
        if line is None:
            return None
        method, path, _ = line.split(" ", 2)
        headers = {}
        while True:
            h = self._read_line(f)
            if h is None:
                return None
            if h == "":
                break
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._read_line(f).split(";")[0], 16)
                if size == 0:
                    while self._read_line(f):
                        pass
                    break
                body += f.read(size)
                f.read(2)
        elif "content-length" in headers:
            body = f.read(int(headers["content-length"]))
        return {"method": method, "path": path, "headers": headers, "body": body}

    def _serve_conn(self, sock, addr):
        f = sock.makefile("rb")
        try:
            while not self.stop.is_set():
                req = self._read_request(f)
                if req is None:
                    return
                req["port"] = addr[1]
                act = self._next_action(req)
                if not self._respond(sock, act):
                    return
        except (OSError, ValueError):
            return
        finally:
            try:
                f.close()
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _head(status, headers):
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "X")
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _respond(self, sock, act):
        """Sends one answer; returns False when the connection must be closed."""
        kind = act.get("kind", "normal")
        status = act.get("status", 200)
        headers = dict(act.get("headers", {}))
        body = act.get("body", b"")
        if isinstance(body, str):
            body = body.encode()
        if kind == "normal":
            headers["Content-Length"] = str(len(body))
            sock.sendall(self._head(status, headers) + body)
            return True
        if kind == "chunked":
            headers["Transfer-Encoding"] = "chunked"
            out = self._head(status, headers)
            for i in range(0, len(body), 1000):
                part = body[i:i + 1000]
                out += b"%x\r\n" % len(part) + part + b"\r\n"
            sock.sendall(out + b"0\r\n\r\n")
            return True
        if kind == "cut_length":  # announce the whole body, send a prefix, then reset
            headers["Content-Length"] = str(len(body))
            sock.sendall(self._head(status, headers) + body[:act["send"]])
            self._reset(sock)
            return False
        if kind == "cut_chunked":  # chunked body without its terminating chunk
            headers["Transfer-Encoding"] = "chunked"
            part = body[:act["send"]]
            sock.sendall(self._head(status, headers) + b"%x\r\n" % len(part) + part + b"\r\n")
            time.sleep(0.05)
            sock.shutdown(socket.SHUT_RDWR)
            return False
        if kind == "stall":  # headers and a few bytes, then nothing
            headers["Content-Length"] = str(len(body))
            sock.sendall(self._head(status, headers) + body[:act["send"]])
            self.stop.wait(act.get("seconds", 10))
            return False
        if kind == "close":  # no answer at all
            self._reset(sock)
            return False
        raise AssertionError(kind)

    @staticmethod
    def _reset(sock):
        time.sleep(0.05)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()


def ok(body=b"hello world", headers=None):
    return {"status": 200, "body": body, "headers": headers or {}}


def err(status, body=b"", headers=None):
    return {"status": status, "body": body, "headers": headers or {}}


@pytest.fixture
def run(tool, tmp_path):
    """Runs kvsfs-http; returns (result dict, body bytes, stderr text)."""
    counter = [0]

    def _run(url, *args, timeout=60):
        counter[0] += 1
        res = tmp_path / f"res{counter[0]}.json"
        out = tmp_path / f"out{counter[0]}.bin"
        cmd = [tool("kvsfs-http"), "--result", str(res), "-o", str(out), *args, url]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        assert p.returncode in (0, 1), p.stderr.decode()
        result = json.loads(res.read_text())
        body = out.read_bytes() if out.exists() else b""
        return result, body, p.stderr.decode()

    return _run


FAST = ["--base-ms", "20", "--max-ms", "100"]


def test_503_then_success(run):
    with ScriptedServer([err(503), ok(b"payload")]) as srv:
        r, body, _ = run(srv.url(), *FAST)
    assert r["rc"] == 0 and r["status"] == 200 and r["attempts"] == 2
    assert body == b"payload"
    assert len(srv.requests) == 2


THROTTLES = {
    "header_clientlimit": err(400, b'{"Message":"Limit exceeded"}', {
        "x-amzn-ErrorType": "ClientLimitExceededException:http://internal.amazon.com/coral/",
        "Content-Type": "application/json"}),
    "body_type_clientlimit": err(400, b'{"__type":"ClientLimitExceededException",'
                                      b'"Message":"Limit exceeded"}'),
    "namespace_type": err(400, b'{"__type":"com.amazon#ConnectionLimitExceededException"}'),
    "xml_slowdown": err(400, b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown'
                             b'</Code><Message>Please reduce your request rate.</Message>'
                             b'<RequestId>R1</RequestId></Error>'),
    "s3_503_slowdown": err(503, b"<Error><Code>SlowDown</Code></Error>"),
    "http_429": err(429, b"too many"),
    "throttling_exception": err(400, b'{"__type":"ThrottlingException","message":"Rate"}'),
}


@pytest.mark.parametrize("name", sorted(THROTTLES))
def test_throttling_then_success(run, name):
    with ScriptedServer([THROTTLES[name], THROTTLES[name], ok(b"done")]) as srv:
        r, body, _ = run(srv.url(), *FAST, "-X", "POST", "-d", "{}")
    assert r["rc"] == 0 and r["attempts"] == 3 and body == b"done"


@pytest.mark.parametrize("name", ["header_clientlimit", "xml_slowdown", "http_429"])
def test_throttling_exhausted_is_eagain(run, name):
    with ScriptedServer([THROTTLES[name]]) as srv:
        r, body, _ = run(srv.url(), *FAST, "--attempts", "3")
    assert r["attempts"] == 3 and r["errno"] == errno.EAGAIN and r["throttled"] == 1
    assert body == b""


def test_non_retryable_400_not_retried(run):
    bad = err(400, b'{"Message":"bad name"}', {"x-amzn-ErrorType": "InvalidArgumentException",
                                               "x-amzn-RequestId": "req-123"})
    with ScriptedServer([bad, ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST)
    assert r["attempts"] == 1 and len(srv.requests) == 1
    assert r["errno"] == errno.EINVAL and r["type"] == "InvalidArgumentException"
    assert r["message"] == "bad name" and r["request_id"] == "req-123" and r["status"] == 400


def test_404_is_enoent_not_retried(run):
    nf = err(404, b'{"Message":"The requested stream is not found or not active."}',
             {"x-amzn-ErrorType": "ResourceNotFoundException:http://x/"})
    with ScriptedServer([nf, ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST)
    assert r["attempts"] == 1 and r["errno"] == errno.ENOENT
    assert r["type"] == "ResourceNotFoundException"


def test_5xx_claiming_not_found_is_never_enoent(run):
    bad = err(500, b'{"__type":"ResourceNotFoundException"}')
    with ScriptedServer([bad]) as srv:
        r, _, _ = run(srv.url(), *FAST, "--attempts", "2")
    assert r["attempts"] == 2 and r["errno"] == errno.EIO


def test_auth_errors_are_eacces(run):
    for status, body in ((403, b'{"message":"Signature expired: 20240101T000000Z"}'),
                         (401, b'{"__type":"NotAuthorizedException"}')):
        with ScriptedServer([err(status, body), ok()]) as srv:
            r, _, _ = run(srv.url(), *FAST)
        assert r["attempts"] == 1 and r["errno"] == errno.EACCES


def test_retries_run_out_with_bounded_time(run):
    with ScriptedServer([err(503)]) as srv:
        t0 = time.monotonic()
        r, body, stderr = run(srv.url(), *FAST, "--attempts", "4")
        took = time.monotonic() - t0
    assert r["attempts"] == 4 and len(srv.requests) == 4 and r["errno"] == errno.EIO
    assert took < 5 and body == b""
    assert "giving up after 4 attempts" in stderr


def test_total_time_budget_bounds_retries(run):
    with ScriptedServer([err(503)]) as srv:
        t0 = time.monotonic()
        r, _, _ = run(srv.url(), "--attempts", "1000", "--base-ms", "50", "--max-ms", "200",
                      "--total-ms", "700")
        took = time.monotonic() - t0
    assert r["errno"] == errno.EIO and 2 <= r["attempts"] < 100
    assert took < 3


BIG = bytes(range(256)) * 400  # 102400 bytes


@pytest.mark.parametrize("cut", [{"kind": "cut_length", "send": 30000},
                                 {"kind": "cut_chunked", "send": 30000},
                                 {"kind": "close"}],
                         ids=["content_length", "chunked", "no_answer"])
def test_cut_body_retried_whole_body_delivered(run, cut):
    bad = dict(cut, status=200, body=BIG)
    with ScriptedServer([bad, ok(BIG)]) as srv:
        r, body, _ = run(srv.url(), *FAST)
    assert r["rc"] == 0 and r["attempts"] == 2
    assert body == BIG  # the partial first attempt was discarded, not prepended


@pytest.mark.parametrize("cut", [{"kind": "cut_length", "send": 30000},
                                 {"kind": "cut_chunked", "send": 30000}],
                         ids=["content_length", "chunked"])
def test_cut_body_without_retries_is_an_error(run, cut):
    bad = dict(cut, status=200, body=BIG)
    with ScriptedServer([bad, ok(BIG)]) as srv:
        r, _, _ = run(srv.url(), *FAST, "--attempts", "1")
    assert r["rc"] != 0 and r["errno"] == errno.EIO and r["curl_code"] != 0
    assert r["attempts"] == 1


def test_chunked_response_complete(run):
    with ScriptedServer([dict(kind="chunked", status=200, body=BIG)]) as srv:
        r, body, _ = run(srv.url())
    assert r["rc"] == 0 and body == BIG


def test_non_idempotent_not_retried(run):
    with ScriptedServer([err(503), ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST, "-X", "POST", "-d", "x", "--not-idempotent")
    assert r["attempts"] == 1 and len(srv.requests) == 1 and r["errno"] == errno.EIO
    with ScriptedServer([{"kind": "close"}, ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST, "-X", "POST", "-d", "x", "--not-idempotent")
    assert r["attempts"] == 1 and r["rc"] != 0


def test_prepare_runs_before_every_attempt(run):
    with ScriptedServer([err(500), err(502), ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST, "--attempt-header", "X-Attempt",
                      "-H", "X-Fixed: yes")
    assert r["rc"] == 0 and r["attempts"] == 3
    assert [q["headers"]["x-attempt"] for q in srv.requests] == ["1", "2", "3"]
    assert all(q["headers"]["x-fixed"] == "yes" for q in srv.requests)


def test_request_body_resent_on_retry(run, tmp_path):
    data = os.urandom(200000)
    src = tmp_path / "body.bin"
    src.write_bytes(data)
    with ScriptedServer([err(503), ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST, "-X", "PUT", "--data-file", str(src))
    assert r["rc"] == 0 and r["attempts"] == 2
    assert [q["body"] for q in srv.requests] == [data, data]
    assert srv.requests[0]["headers"]["content-length"] == str(len(data))
    # chunked upload (size unknown)
    with ScriptedServer([err(503), ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST, "-X", "PUT", "--data-file", str(src), "--chunked")
    assert r["rc"] == 0 and [q["body"] for q in srv.requests] == [data, data]
    assert srv.requests[0]["headers"]["transfer-encoding"] == "chunked"
    # memory body with POST: no form content type is invented
    with ScriptedServer([err(503), ok()]) as srv:
        r, _, _ = run(srv.url(), *FAST, "-X", "POST", "-d", '{"a":1}',
                      "-H", "Content-Type: application/json")
    assert [q["body"] for q in srv.requests] == [b'{"a":1}'] * 2
    assert srv.requests[0]["headers"]["content-type"] == "application/json"


def test_unrewindable_body_not_retried_after_sending(run, tmp_path):
    src = tmp_path / "body.bin"
    src.write_bytes(b"x" * 5000)
    with ScriptedServer([err(503), ok()]) as srv:
        r, _, stderr = run(srv.url(), *FAST, "-v", "-X", "PUT", "--data-file", str(src),
                           "--no-rewind")
    assert r["attempts"] == 1 and r["errno"] == errno.EIO
    assert "cannot be rewound" in stderr


def test_connection_reuse(run):
    with ScriptedServer([ok(b"a" * 100)]) as srv:
        r, _, _ = run(srv.url(), "--repeat", "6")
    assert r["ok"] == 6
    assert len(srv.requests) == 6
    assert len({q["port"] for q in srv.requests}) == 1  # one TCP connection for all six


def test_concurrency(run):
    with ScriptedServer([ok(BIG)]) as srv:
        r, _, _ = run(srv.url(), "--threads", "8", "--repeat", "12")
    assert r["count"] == 96 and r["ok"] == 96 and set(r["bytes"]) == {len(BIG)}
    assert len(srv.requests) == 96
    # connections are reused per pooled handle: far fewer connections than requests
    assert len({q["port"] for q in srv.requests}) <= 16


def test_concurrency_with_retries(run):
    script = [err(503) if i % 3 == 0 else ok(b"z" * 1000) for i in range(60)] + [ok(b"z" * 1000)]
    with ScriptedServer(script) as srv:
        # 20 of the first 60 answers are 503 and concurrent requests draw them in any order:
        # allow enough attempts that no request can draw five 503 in a row and give up
        r, _, _ = run(srv.url(), *FAST, "--attempts", "25", "--threads", "8", "--repeat", "5")
    assert r["ok"] == 40 and set(r["bytes"]) == {1000}


def test_low_speed_timeout(run):
    stall = {"kind": "stall", "status": 200, "body": b"x" * 100000, "send": 10, "seconds": 20}
    with ScriptedServer([stall]) as srv:
        t0 = time.monotonic()
        r, body, _ = run(srv.url(), "--attempts", "1", "--low-speed-limit", "1000",
                         "--low-speed-time", "1")
        took = time.monotonic() - t0
    assert r["rc"] != 0 and r["errno"] == errno.ETIMEDOUT and r["curl_code"] == 28
    assert took < 8


def test_total_timeout(run):
    stall = {"kind": "stall", "status": 200, "body": b"x" * 100000, "send": 10, "seconds": 20}
    with ScriptedServer([stall]) as srv:
        t0 = time.monotonic()
        r, _, _ = run(srv.url(), "--attempts", "2", "--timeout-ms", "500", *FAST)
        took = time.monotonic() - t0
    assert r["errno"] == errno.ETIMEDOUT and r["attempts"] == 2 and took < 5


def test_connection_refused(run):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r, _, _ = run(f"http://127.0.0.1:{port}/x", *FAST, "--attempts", "3")
    assert r["errno"] == errno.ECONNREFUSED and r["attempts"] == 3 and r["status"] == 0


def test_query_secrets_not_logged(run):
    with ScriptedServer([err(503), ok()]) as srv:
        url = srv.url("/p?X-Amz-Signature=SIGSECRET&X-Amz-Security-Token=TOKSECRET")
        r, _, stderr = run(url, *FAST, "-v", "-H", "Authorization: AWS4 AUTHSECRET")
    assert r["rc"] == 0
    assert "attempt 1/" in stderr and "127.0.0.1" in stderr
    for secret in ("SIGSECRET", "TOKSECRET", "AUTHSECRET"):
        assert secret not in stderr


def test_error_headers_and_body_visible(run):
    hdrs = {"ETag": '"abc"', "x-amz-meta-color": "blue", "Last-Modified": "Mon, 01 Jan 2024"}
    with ScriptedServer([ok(b"1234", hdrs)]) as srv:
        r, body, _ = run(srv.url(), "-X", "HEAD")
    assert r["rc"] == 0 and body == b""
    assert r["headers"]["etag"] == '"abc"' and r["headers"]["x-amz-meta-color"] == "blue"


# ---- TLS: a self-signed certificate is trusted only through --ca-file --------------------------

@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx, cert


def test_tls_ca_file(run, self_signed, tmp_path):
    ctx, cert = self_signed
    with ScriptedServer([ok(b"secure")], tls_ctx=ctx) as srv:
        r, _, _ = run(srv.url(), "--attempts", "1")
        assert r["rc"] != 0 and r["curl_code"] == 60 and r["errno"] == errno.EIO
        r, body, _ = run(srv.url(), "--attempts", "1", "--ca-file", str(cert))
        assert r["rc"] == 0 and body == b"secure"
        # reuse across requests works over TLS too
        r, _, _ = run(srv.url(), "--ca-file", str(cert), "--repeat", "3")
        assert r["ok"] == 3
        r, body, _ = run(srv.url(), "--attempts", "1", "--insecure")
        assert r["rc"] == 0 and body == b"secure"
    bad = tmp_path / "notpem.txt"
    bad.write_text("hello")
    r, _, _ = run("https://localhost:1/", "--ca-file", str(bad))
    assert r.get("client_error") and r["errno"] == errno.EINVAL
    r, _, _ = run("https://localhost:1/", "--ca-file", str(tmp_path / "missing.pem"))
    assert r.get("client_error") and r["errno"] == errno.ENOENT


def test_put_without_body_and_delete(run):
    with ScriptedServer([ok(b"token")]) as srv:
        r, body, _ = run(srv.url("/latest/api/token"), "-X", "PUT",
                         "-H", "X-aws-ec2-metadata-token-ttl-seconds: 21600")
        assert r["rc"] == 0 and body == b"token"
        q = srv.requests[0]
        assert q["method"] == "PUT" and q["headers"].get("content-length") == "0"
        assert q["headers"]["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
        assert "expect" not in q["headers"]
        r, _, _ = run(srv.url("/k"), "-X", "DELETE")
        assert r["rc"] == 0 and srv.requests[1]["method"] == "DELETE"


def test_huge_error_body_is_bounded(run):
    body = b'{"Message":"' + b"m" * 300000 + b'"}'
    with ScriptedServer([err(400, body, {"x-amzn-ErrorType": "InvalidArgumentException"})]) as srv:
        r, out, _ = run(srv.url(), *FAST)
    # the error body was cut at the bound, so its JSON is unreadable: the type still comes
    # from the header, the message is simply absent, nothing went to the body output
    assert r["errno"] == errno.EINVAL and r["type"] == "InvalidArgumentException"
    assert out == b"" and len(r["message"]) < 1000


def test_redirect_not_followed(run):
    with ScriptedServer([err(301, b"<Error><Code>PermanentRedirect</Code></Error>",
                             {"Location": "http://127.0.0.1:1/elsewhere"})]) as srv:
        r, _, _ = run(srv.url(), *FAST)
    assert r["attempts"] == 1 and r["errno"] == errno.EIO and r["status"] == 301
    assert r["type"] == "PermanentRedirect"
