"""kvsfs credentials chain (src/aws/creds.c): container and instance-metadata sources, refresh.

A local stand-in server (Python stdlib, 127.0.0.1 port 0) plays both the ECS container
credentials endpoint and EC2's IMDS:
  - container: GET <path> answers a credentials document, checking the Authorization header
    when the test expects one;
  - IMDSv2: PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds and answers a token;
    GETs under /latest/meta-data/ without that token get 401 (IMDSv1 refused) unless the test
    simulates an IMDSv1-only host (token PUT answered 404, GETs open).
Every credentials document carries a fetch number n: AccessKeyId ASIA<n>, secret secret<n>,
token token<n> (8 digits), so `kvsfs-creds --threads ... --check-suffix 8` can detect a torn copy.
Expiration is "now + exp_s"; with short exp_s and a short --margin the tool must refresh, and the
server counts fetches. A server may also start failing after a number of fetches.
"""
import hashlib
import json
import socket
import ssl
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

IMDS_TOKEN = "imds-token-SECRETVALUE"
ROLE = "kvsfs-test-role"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


class CredServer:
    def __init__(self, container_path="/v2/credentials/abc", auth=None, exp_s=3600,
                 fail_after=None, imds_v2_only=True, token_put_status=None, no_role=False,
                 tls_ctx=None):
        self.no_role = no_role
        self.container_path = container_path
        self.auth = auth
        self.exp_s = exp_s
        self.fail_after = fail_after
        self.imds_v2_only = imds_v2_only
        self.token_put_status = token_put_status
        self.fetches = 0
        self.log = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, status, body=b"", ctype="text/plain"):
                if isinstance(body, str):
                    body = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def creds_doc(self, token_key="Token"):
                with outer.lock:
                    if outer.fail_after is not None and outer.fetches >= outer.fail_after:
                        return None
                    outer.fetches += 1
                    n = outer.fetches
                exp = datetime.now(timezone.utc) + timedelta(seconds=outer.exp_s)
                return json.dumps({
                    "Code": "Success", "Type": "AWS-HMAC",
                    "AccessKeyId": f"ASIA{n:08d}", "SecretAccessKey": f"secret{n:08d}",
                    token_key: f"token{n:08d}",
                    "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "LastUpdated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                })

            def record(self):
                with outer.lock:
                    outer.log.append((self.command, self.path, dict(self.headers.items())))

            def imds_token_ok(self):
                if not outer.imds_v2_only:
                    return True
                return self.headers.get("X-aws-ec2-metadata-token") == IMDS_TOKEN

            def do_PUT(self):
                self.record()
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                if self.path != "/latest/api/token":
                    return self.reply(404)
                if outer.token_put_status:
                    return self.reply(outer.token_put_status)
                if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self.reply(400)
                self.reply(200, IMDS_TOKEN)

            def do_GET(self):
                self.record()
                if self.path == outer.container_path:
                    if outer.auth is not None and self.headers.get("Authorization") != outer.auth:
                        return self.reply(401, '{"message": "bad token"}')
                    doc = self.creds_doc()
                    return self.reply(500) if doc is None else self.reply(200, doc, "application/json")
                if self.path.startswith("/latest/meta-data/"):
                    if not self.imds_token_ok():
                        return self.reply(401)
                    if self.path == "/latest/meta-data/iam/security-credentials/":
                        if outer.no_role:
                            return self.reply(404)
                        return self.reply(200, ROLE + "\n")
                    if self.path == "/latest/meta-data/iam/security-credentials/" + ROLE:
                        doc = self.creds_doc()
                        return self.reply(500) if doc is None else self.reply(200, doc)
                self.reply(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        if tls_ctx is not None:
            self.server.socket = tls_ctx.wrap_socket(self.server.socket, server_side=True)
            self.base = f"https://localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def base_env(tmp_path, **extra):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(extra)
    return env


def imds_env(tmp_path, endpoint, **extra):
    env = base_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint, **extra)
    del env["AWS_EC2_METADATA_DISABLED"]
    return env


def run(tool, env, *args, timeout=60):
    r = subprocess.run([tool("kvsfs-creds"), "--secret-sha256", "--log-level", "3", *args],
                       env=env, capture_output=True, text=True, timeout=timeout)
    out = json.loads(r.stdout)
    # Nothing secret ever appears in the output or the (debug) log.
    for text in (r.stdout, r.stderr):
        assert "secret0" not in text and "token0" not in text and IMDS_TOKEN not in text
        assert "SECRETTOKEN" not in text
    return r.returncode, out, r.stderr


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- container ----

def test_container_relative_uri(tool, tmp_path):
    with CredServer() as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/abc",
                       KVSFS_CONTAINER_ENDPOINT=srv.base)
        rc, out, err = run(tool, env)
        assert rc == 0 and out["source"] == "container"
        assert out["access_key_id"] == "ASIA00000001"
        assert out["secret_sha256"] == sha("secret00000001")
        assert out["token_sha256"] == sha("token00000001")
        assert out["expiration"] is not None
        assert "credentials from container endpoint" in err
        method, path, headers = srv.log[0]
        assert (method, path) == ("GET", "/v2/credentials/abc")
        assert "Authorization" not in headers
        # Same through the option instead of the environment variable.
        del env["KVSFS_CONTAINER_ENDPOINT"]
        rc, out, _ = run(tool, env, "--container-endpoint", srv.base + "/")
        assert rc == 0 and out["access_key_id"] == "ASIA00000002"


def test_files_beat_container(tool, tmp_path):
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKFILE\naws_secret_access_key = s\n")
    with CredServer() as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/abc",
                       KVSFS_CONTAINER_ENDPOINT=srv.base)
        rc, out, _ = run(tool, env)
        assert out["source"] == "credentials-file" and srv.fetches == 0


def test_container_full_uri_with_token(tool, tmp_path):
    with CredServer(container_path="/creds", auth="Bearer SECRETTOKEN") as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.base + "/creds",
                       AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer SECRETTOKEN")
        rc, out, _ = run(tool, env)
        assert rc == 0 and out["source"] == "container" and out["access_key_id"] == "ASIA00000001"
        assert srv.log[-1][2].get("Authorization") == "Bearer SECRETTOKEN"
        # A wrong token is refused by the endpoint: EACCES, one sentence, no token echoed.
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Bearer wrong"
        rc, out, _ = run(tool, env)
        assert rc == 1 and out["errno"] == "EACCES" and "401" in out["error"]
        # localhost is an allowed host too.
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://localhost:{srv.port}/creds"
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Bearer SECRETTOKEN"
        rc, out, _ = run(tool, env)
        assert rc == 0 and out["source"] == "container"


def test_container_token_file(tool, tmp_path):
    tf = tmp_path / "token"
    tf.write_text("SECRETTOKEN-from-file\n")
    with CredServer(container_path="/creds", auth="SECRETTOKEN-from-file") as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.base + "/creds",
                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tf),
                       AWS_CONTAINER_AUTHORIZATION_TOKEN="SECRETTOKEN-ignored")
        rc, out, _ = run(tool, env)
        assert rc == 0 and out["access_key_id"] == "ASIA00000001"
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(tmp_path / "missing")
        rc, out, _ = run(tool, env)
        assert rc == 1 and "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in out["error"]


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


def test_container_full_uri_https_any_host(tool, tmp_path, self_signed):
    ctx, cert = self_signed
    with CredServer(container_path="/creds", auth="SECRETTOKEN-tls", tls_ctx=ctx) as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.base + "/creds",
                       AWS_CONTAINER_AUTHORIZATION_TOKEN="SECRETTOKEN-tls")
        rc, out, _ = run(tool, env, "--ca-file", str(cert))
        assert rc == 0 and out["source"] == "container" and out["access_key_id"] == "ASIA00000001"
        # Without trusting the certificate, TLS verification fails (and fast).
        t0 = time.monotonic()
        rc, out, _ = run(tool, env)
        assert rc == 1 and "container credentials endpoint" in out["error"]
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("uri", ["http://169.254.1.1/creds", "http://example.com/creds",
                                 "http://10.0.0.1:80/x", "ftp://127.0.0.1/x"])
def test_container_full_uri_host_not_allowed(tool, tmp_path, uri):
    env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=uri)
    t0 = time.monotonic()
    rc, out, _ = run(tool, env)
    assert rc == 1 and out["errno"] == "EINVAL" and "FULL_URI" in out["error"]
    assert time.monotonic() - t0 < 3


def test_container_unreachable_fails_fast(tool, tmp_path):
    env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/x",
                   KVSFS_CONTAINER_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    t0 = time.monotonic()
    rc, out, _ = run(tool, env)
    assert rc == 1 and "container credentials endpoint" in out["error"]
    assert time.monotonic() - t0 < 5


def test_container_refresh_and_counts(tool, tmp_path):
    with CredServer(exp_s=3) as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/abc",
                       KVSFS_CONTAINER_ENDPOINT=srv.base)
        rc, out, _ = run(tool, env, "--margin", "2", "--repeat", "6", "--interval-ms", "700")
        assert rc == 0 and all(r == 0 for r in out["rcs"])
        assert out["keys"][0] == "ASIA00000001" and out["keys"][-1] != "ASIA00000001"
        assert out["fetches"] == srv.fetches >= 2


def test_refresh_failure_keeps_valid_then_expires(tool, tmp_path):
    with CredServer(exp_s=4, fail_after=1) as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/abc",
                       KVSFS_CONTAINER_ENDPOINT=srv.base)
        rc, out, err = run(tool, env, "--margin", "3", "--repeat", "9", "--interval-ms", "700",
                           "--container-timeout-ms", "500")
        rcs = out["rcs"]
        # Valid credentials are kept while refreshes fail, then EACCES once they expired.
        assert rcs[0] == 0 and rcs[1] == 0 and rcs[2] == 0
        assert rcs[-1] == -13
        first_bad = rcs.index(-13)
        assert all(r == 0 for r in rcs[:first_bad]) and all(r == -13 for r in rcs[first_bad:])
        assert set(k for k in out["keys"] if k) == {"ASIA00000001"}
        assert out["failures"] >= 2
        warnings = [l for l in err.splitlines() if l.startswith("kvsfs[warning] creds:")]
        assert len(warnings) == 1 and "keeping the current ones" in warnings[0]
        assert any("kvsfs[error] creds:" in l and "expired" in l for l in err.splitlines())


def test_threads_during_refresh_never_see_torn_credentials(tool, tmp_path):
    with CredServer(exp_s=3) as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/abc",
                       KVSFS_CONTAINER_ENDPOINT=srv.base)
        rc, out, _ = run(tool, env, "--margin", "2", "--threads", "8", "--seconds", "5",
                         "--check-suffix", "8")
        assert rc == 0
        assert out["errors"] == 0 and out["torn"] == 0
        assert out["calls"] > 1000
        # One refresh at a time: about one fetch per second, never a burst per thread.
        assert out["fetches"] == srv.fetches
        assert 3 <= out["fetches"] <= 8
        assert out["distinct_keys"] >= 3


# ---- IMDS ----

def test_imdsv2_token_then_role(tool, tmp_path):
    with CredServer() as srv:
        rc, out, err = run(tool, imds_env(tmp_path, srv.base))
        assert rc == 0 and out["source"] == "imds" and out["access_key_id"] == "ASIA00000001"
        assert out["token_sha256"] == sha("token00000001")
        assert ROLE in out["describe"] and ROLE in err
        calls = [(m, p) for m, p, _ in srv.log]
        assert calls == [("PUT", "/latest/api/token"),
                         ("GET", "/latest/meta-data/iam/security-credentials/"),
                         ("GET", "/latest/meta-data/iam/security-credentials/" + ROLE)]
        assert srv.log[0][2].get("X-aws-ec2-metadata-token-ttl-seconds") == "21600"
        for _, _, h in srv.log[1:]:
            assert h.get("X-aws-ec2-metadata-token") == IMDS_TOKEN
        # The server refuses IMDSv1: a GET without the token gets 401 (the fake is strict).
        import urllib.error
        import urllib.request
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.base + "/latest/meta-data/iam/security-credentials/",
                                   timeout=5)
        assert e.value.code == 401


def test_imds_trailing_slash_endpoint_and_refresh(tool, tmp_path):
    with CredServer(exp_s=3) as srv:
        rc, out, _ = run(tool, imds_env(tmp_path, srv.base + "/"), "--margin", "2", "--repeat",
                         "5", "--interval-ms", "700")
        assert rc == 0 and all(r == 0 for r in out["rcs"])
        assert out["fetches"] == srv.fetches >= 2
        puts = [1 for m, _, _ in srv.log if m == "PUT"]
        assert len(puts) == out["fetches"]  # a fresh token per refresh


def test_imds_threads(tool, tmp_path):
    with CredServer(exp_s=3) as srv:
        rc, out, _ = run(tool, imds_env(tmp_path, srv.base), "--margin", "2", "--threads", "6",
                         "--seconds", "4", "--check-suffix", "8")
        assert out["errors"] == 0 and out["torn"] == 0 and out["fetches"] == srv.fetches >= 2


def test_imdsv1_fallback_and_v1_disabled(tool, tmp_path):
    with CredServer(imds_v2_only=False, token_put_status=404) as srv:
        rc, out, _ = run(tool, imds_env(tmp_path, srv.base))
        assert rc == 0 and out["source"] == "imds"
        for m, _, h in srv.log[1:]:
            assert m == "GET" and "X-aws-ec2-metadata-token" not in h
        rc, out, _ = run(tool, imds_env(tmp_path, srv.base, AWS_EC2_METADATA_V1_DISABLED="true"))
        assert rc == 1 and out["errno"] == "ENOKEY" and "IMDSv2" in out["error"]


def test_imds_disabled_sends_nothing(tool, tmp_path):
    with CredServer() as srv:
        env = imds_env(tmp_path, srv.base)
        env["AWS_EC2_METADATA_DISABLED"] = "TRUE"
        rc, out, _ = run(tool, env)
        assert rc == 1 and out["errno"] == "ENOKEY" and "disabled" in out["error"]
        assert srv.log == []


def test_env_and_container_beat_imds(tool, tmp_path):
    with CredServer() as srv:
        env = imds_env(tmp_path, srv.base, AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY="x")
        rc, out, _ = run(tool, env)
        assert out["source"] == "environment" and srv.log == []
        env = imds_env(tmp_path, srv.base, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/abc",
                       KVSFS_CONTAINER_ENDPOINT=srv.base)
        rc, out, _ = run(tool, env)
        assert out["source"] == "container"
        assert all(not p.startswith("/latest") for _, p, _ in srv.log)


def test_imds_unreachable_fails_fast(tool, tmp_path):
    # Nothing listens: connection refused.
    t0 = time.monotonic()
    rc, out, _ = run(tool, imds_env(tmp_path, f"http://127.0.0.1:{free_port()}"))
    assert rc == 1 and out["errno"] == "ENOKEY"
    assert out["error"].startswith("no AWS credentials found") and "instance metadata" in out["error"]
    assert time.monotonic() - t0 < 3
    # Something accepts connections but never answers: the 1 s timeout applies.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        t0 = time.monotonic()
        rc, out, _ = run(tool, imds_env(tmp_path, f"http://127.0.0.1:{s.getsockname()[1]}"))
        elapsed = time.monotonic() - t0
        assert rc == 1 and out["errno"] == "ENOKEY"
        assert elapsed < 4, elapsed
    finally:
        s.close()


def test_imds_no_role(tool, tmp_path):
    with CredServer(no_role=True) as srv:
        rc, out, _ = run(tool, imds_env(tmp_path, srv.base))
        assert rc == 1 and out["errno"] == "ENOKEY" and "no IAM role" in out["error"]


# ---- the stand-in servers are faithful enough for the AWS CLI itself ----

def cli_export(env):
    cli = subprocess.run(["/usr/bin/aws", "configure", "export-credentials", "--format", "process"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    return json.loads(cli.stdout)


def test_aws_cli_reads_the_fake_imds_like_kvsfs(tool, tmp_path):
    with CredServer() as srv:
        env = imds_env(tmp_path, srv.base + "/")  # the CLI needs the trailing slash
        ref = cli_export(env)
        cli_calls = [(m, p) for m, p, _ in srv.log]
        assert ref["AccessKeyId"] == "ASIA00000001" and ref["SessionToken"] == "token00000001"
        srv.log.clear()
        rc, out, _ = run(tool, env)
        assert rc == 0 and out["access_key_id"] == "ASIA00000002"
        # kvsfs makes the same IMDSv2 calls as the CLI.
        assert [(m, p) for m, p, _ in srv.log] == cli_calls


def test_aws_cli_reads_the_fake_container_endpoint_like_kvsfs(tool, tmp_path):
    with CredServer(container_path="/creds", auth="SECRETTOKEN-x") as srv:
        env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.base + "/creds",
                       AWS_CONTAINER_AUTHORIZATION_TOKEN="SECRETTOKEN-x")
        ref = cli_export(env)
        assert ref["AccessKeyId"] == "ASIA00000001"
        rc, out, _ = run(tool, env)
        assert rc == 0 and out["access_key_id"] == "ASIA00000002"
        assert out["token_sha256"] == sha("token00000002")
