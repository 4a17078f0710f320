"""The whole AWS core end to end: shared files and credentials chain, region, SigV4 signing of
every attempt, HTTP with retries, typed errors, and no secret in any log line.

A local HTTP server verifies each request's signature the way AWS does, independently, with
botocore's signer (SigV4Auth / S3SigV4Auth) recomputing the signature from the headers that the
request says it signed.
"""
import http.server
import json
import os
import subprocess
import threading

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIDKVSFSTEST0000001"
SECRET_KEY = "kvsfsTestSecretKey/0123456789abcdefghijKLMN"
TOKEN = "IQoJkvsfsSessionToken//SECRET+token=value0123456789"


class VerifyingServer:
    """Answers every request after checking its SigV4 signature with botocore.

    `script` is a list of (status, headers, body) replies used in turn before the default
    success reply; it lets a test make the first attempts fail."""

    def __init__(self):
        self.requests = []
        self.script = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                ok, why = outer.verify(self, body)
                with outer.lock:
                    outer.requests.append({"path": self.path, "ok": ok, "why": why,
                                           "headers": dict(self.headers), "body": body})
                    scripted = outer.script.pop(0) if outer.script else None
                if not ok:
                    self._reply(403, {"x-amzn-ErrorType": "InvalidSignatureException"},
                                json.dumps({"message": why}).encode())
                elif scripted:
                    self._reply(*scripted)
                else:
                    self._reply(200, {"Content-Type": "application/json"},
                                json.dumps({"Verified": True, "Path": self.path}).encode())

            def _reply(self, status, headers, body):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def verify(self, handler, body):
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return False, "no SigV4 Authorization header"
        parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        ak, date, region, service, _ = parts["Credential"].split("/")
        if ak != ACCESS_KEY:
            return False, "unknown access key"
        signed = parts["SignedHeaders"].split(";")
        headers = {}
        for name in signed:
            values = handler.headers.get_all(name)
            if values is None:
                return False, f"signed header {name} missing"
            headers[name] = ",".join(values)
        url = f"http://{handler.headers['Host']}{handler.path}"
        req = AWSRequest(method=handler.command, url=url, headers=headers, data=body)
        req.context["timestamp"] = handler.headers["X-Amz-Date"]
        token = handler.headers.get("X-Amz-Security-Token")
        creds = Credentials(ACCESS_KEY, SECRET_KEY, token)
        signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(creds, service, region)
        if service == "s3":
            req.context["payload_signing_enabled"] = True
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        if expected != parts["Signature"]:
            return False, "signature mismatch"
        return True, "ok"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = VerifyingServer()
    try:
        yield s
    finally:
        s.stop()


def clean_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    env.update(extra)
    return env


def run_tool(tool, env, *args, timeout=60):
    return subprocess.run([tool("kvsfs-aws"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_no_secret(text):
    assert SECRET_KEY not in text
    assert TOKEN not in text
    # nor recognisable pieces of them
    assert SECRET_KEY[:16] not in text
    assert TOKEN[:16] not in text


def test_signed_json_call_verified_by_botocore_and_log_has_no_secret(tool, server, tmp_path):
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                    AWS_SESSION_TOKEN=TOKEN, AWS_REGION="us-west-2")
    r = run_tool(tool, env, "-d", "--endpoint", server.url, "json", "/listStreams",
                 '{"MaxResults": 5, "Name": "a b+c/~%"}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Verified"] is True
    assert server.requests[0]["ok"], server.requests[0]["why"]
    h = server.requests[0]["headers"]
    assert h["X-Amz-Security-Token"] == TOKEN
    assert "/us-west-2/kinesisvideo/aws4_request" in h["Authorization"]
    assert "awsreq" in r.stderr and "signed POST" in r.stderr  # the debug log was on
    assert_no_secret(r.stderr + r.stdout)


def test_error_reply_becomes_one_clean_line(tool, server, tmp_path):
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                    AWS_SESSION_TOKEN=TOKEN, AWS_REGION="us-east-1")
    server.script.append((404, {"x-amzn-ErrorType": "ResourceNotFoundException:http://internal.amazon.com/"},
                          b'{"Message":"The requested stream is not found or not active."}'))
    r = run_tool(tool, env, "-d", "--endpoint", server.url, "json", "/describeStream",
                 '{"StreamName": "nope"}')
    assert r.returncode == 1
    err = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(err) == 1
    assert "ResourceNotFoundException" in err[0] and "ENOENT" in err[0]
    assert_no_secret(r.stderr)


def test_every_retry_is_signed_afresh(tool, server, tmp_path):
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                    AWS_REGION="eu-central-1")
    server.script += [
        (503, {}, b'{"Message":"busy"}'),
        (400, {"x-amzn-ErrorType": "ClientLimitExceededException"}, b'{"Message":"Limit exceeded"}'),
    ]
    r = run_tool(tool, env, "-d", "--endpoint", server.url, "json", "/listFragments", "{}")
    assert r.returncode == 0, r.stderr
    assert len(server.requests) == 3
    assert all(q["ok"] for q in server.requests), [q["why"] for q in server.requests]
    assert_no_secret(r.stderr)


def test_credentials_from_profile_in_shared_files(tool, server, tmp_path):
    (tmp_path / "credentials").write_text(
        f"[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = wrong\n\n"
        f"[cam]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    (tmp_path / "config").write_text("[profile cam]\nregion = ap-southeast-2\n")
    env = clean_env(tmp_path, AWS_CONFIG_FILE=str(tmp_path / "config"),
                    AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    r = run_tool(tool, env, "-d", "--profile", "cam", "--endpoint", server.url, "json",
                 "/describeStream", "{}")
    assert r.returncode == 0, r.stderr
    assert "/ap-southeast-2/kinesisvideo/" in server.requests[0]["headers"]["Authorization"]
    assert_no_secret(r.stderr)


def test_s3_request_signed_with_content_sha256(tool, server, tmp_path):
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                    AWS_SESSION_TOKEN=TOKEN, AWS_REGION="us-east-1")
    r = run_tool(tool, env, "-d", "--s3", "--header", "x-amz-meta-mtime: 1700000000.25",
                 "raw", "PUT", f"{server.url}/bucket/dir/a%20b%2Bc~.mkv", "hello")
    assert r.returncode == 0, r.stderr
    q = server.requests[0]
    assert q["ok"], q["why"]
    import hashlib
    assert q["headers"]["x-amz-content-sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert_no_secret(r.stderr)


def test_no_credentials_fails_with_one_sentence(tool, server, tmp_path):
    r = run_tool(tool, clean_env(tmp_path, AWS_REGION="us-east-1"), "--endpoint", server.url,
                 "json", "/listStreams")
    assert r.returncode == 1
    assert "credentials" in r.stderr.lower()
    assert not server.requests
