"""The S3 client (src/s3/s3.c) against a real, strict S3 server (Ceph RGW, tests/s3_local), driven
through tests/tools/kvsfs-s3, with boto3 as the independent reader and writer.

Covers every operation (HeadBucket, HeadObject, GetObject with ranges, PutObject from memory and
from an fd range, ListObjectsV2 with delimiter and pagination, DeleteObject, CopyObject COPY and
REPLACE, multipart create/part/complete/abort/list), the integrity checks (Content-MD5 rejected
when wrong), the errno exit codes (ENOENT for a missing bucket, EACCES for a wrong secret), and
through the fault proxy: 503s and connection resets mid-body are retried with the fd body
rewound, and a CompleteMultipartUpload whose answer is lost still succeeds (HeadObject check).

Run: KVSFS_BUILD_DIR=/tmp/build-x /usr/bin/python3 -m pytest tests/integration/modules/s3 -q
"""
import concurrent.futures
import hashlib
import json
import os
import subprocess

import pytest

from s3_local import FaultProxy
from s3_local.testing import have_packages

pytestmark = pytest.mark.skipif(
    not have_packages(),
    reason="RADOS Gateway not installed (apt-get install -y radosgw ceph-mon ceph-osd ceph-common)")

botocore = pytest.importorskip("botocore")
from botocore.exceptions import ClientError  # noqa: E402

MiB = 1 << 20
ENOENT, EIO, EACCES, EINVAL = 2, 5, 13, 22


@pytest.fixture(scope="module")
def bucket(rgw):
    return rgw.make_bucket()


class Tool:
    def __init__(self, path, rgw, bucket):
        self.path, self.rgw, self.bucket = path, rgw, bucket

    def run(self, *args, endpoint=None, bucket=None, env=None, input=None, check=True,
            timeout=120):
        e = self.rgw.aws_env()
        e.update(env or {})
        cmd = [self.path, "--endpoint", endpoint or self.rgw.endpoint,
               "--bucket", bucket or self.bucket, *[str(a) for a in args]]
        r = subprocess.run(cmd, env=e, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} failed ({r.returncode}): {r.stderr.decode()}")
        return r

    def out(self, *args, **kw) -> str:
        return self.run(*args, **kw).stdout.decode().strip()

    def json(self, *args, **kw):
        return json.loads(self.out(*args, **kw))


@pytest.fixture(scope="module")
def t(tool, rgw, bucket):
    return Tool(tool("kvsfs-s3"), rgw, bucket)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def get_bytes(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---- bucket ------------------------------------------------------------------------------------

def test_head_bucket(t):
    r = t.run("head-bucket")
    assert r.returncode == 0


def test_missing_bucket_is_enoent(t):
    r = t.run("head-bucket", bucket="no-such-bucket-here", check=False)
    assert r.returncode == ENOENT
    assert b"does not exist" in r.stderr and b"no-such-bucket-here" in r.stderr


def test_wrong_secret_is_eacces(t):
    r = t.run("head-bucket", env={"AWS_SECRET_ACCESS_KEY": "wrong" * 8}, check=False)
    assert r.returncode == EACCES
    assert b"denied" in r.stderr
    assert b"wrong" not in r.stderr  # the secret never appears
    r = t.run("list", env={"AWS_SECRET_ACCESS_KEY": "wrong" * 8}, check=False)
    assert r.returncode == EACCES
    assert b"SignatureDoesNotMatch" in r.stderr


# ---- put / get / head --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 5 * MiB + 1])
@pytest.mark.parametrize("mode", ["put", "put-mem"])
def test_put_get_head_identical(t, s3, bucket, tmp_path, size, mode):
    data = os.urandom(size)
    src = write(tmp_path, "src", data)
    key = f"objs/{mode}-{size}.bin"
    etag = t.out(mode, key, src)
    assert etag == md5(data)
    assert get_bytes(s3, bucket, key) == data            # boto3 reads what kvsfs wrote
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"') == md5(data)
    info = t.json("head", key)
    assert info["size"] == size and info["etag"] == md5(data)
    assert abs(info["last_modified"] - head["LastModified"].timestamp()) < 1
    out = tmp_path / "out"
    t.run("-o", out, "get", key)
    assert out.read_bytes() == data


def test_boto3_put_kvsfs_get(t, s3, bucket):
    data = os.urandom(3 * MiB + 17)
    s3.put_object(Bucket=bucket, Key="from-boto3", Body=data)
    assert t.run("get", "from-boto3").stdout == data


def test_put_fd_range(t, s3, bucket, tmp_path):
    data = os.urandom(100000)
    src = write(tmp_path, "src", data)
    assert t.out("put", "range-obj", src, 1000, 5000) == md5(data[1000:6000])
    assert get_bytes(s3, bucket, "range-obj") == data[1000:6000]
    assert t.out("put", "tail-obj", src, 99000) == md5(data[99000:])
    assert get_bytes(s3, bucket, "tail-obj") == data[99000:]


def test_ranged_get(t, s3, bucket):
    data = os.urandom(1 * MiB + 123)
    s3.put_object(Bucket=bucket, Key="ranged", Body=data)
    for off, ln in [(0, 1), (5, 100), (MiB, 123), (MiB, 10 * MiB), (17, -1), (len(data) - 1, 1)]:
        args = ["get", "ranged", off] + ([ln] if ln > 0 else [])
        want = data[off:off + ln] if ln > 0 else data[off:]
        assert t.run(*args).stdout == want, (off, ln)
    r = t.run("get", "ranged", len(data) + 10, 5, check=False)
    assert r.returncode == EINVAL  # 416 InvalidRange


def test_get_missing_key(t):
    r = t.run("get", "no/such/key", check=False)
    assert r.returncode == ENOENT and b"NoSuchKey" in r.stderr
    r = t.run("head", "no/such/key", check=False)
    assert r.returncode == ENOENT


def test_special_keys(t, s3, bucket, tmp_path):
    src = write(tmp_path, "src", b"special")
    keys = ["sp/a b+c=d&e;f,g:h@i$j!k'l(m)n*o~p.txt", "sp/\u00e9t\u00e9 \u65e5\u672c/x%41y",
            "sp/trailing space ", "sp/dots/.../..x/x..", "sp//double"]
    for k in keys:
        t.run("put", k, src)
        assert get_bytes(s3, bucket, k) == b"special", k
        assert t.run("get", k).stdout == b"special", k
    listed = [o["key"] for o in t.json("list", "sp/")["objects"]]
    assert sorted(listed) == sorted(keys)
    for bad in ("sp/dot/./x", "sp/../x", ".", ".."):
        r = t.run("put", bad, src, check=False)
        assert r.returncode == EINVAL and b"invalid key" in r.stderr
    t.run("copy", keys[0], keys[1] + ".copy")
    assert get_bytes(s3, bucket, keys[1] + ".copy") == b"special"


# ---- metadata ----------------------------------------------------------------------------------

def test_metadata_round_trip(t, s3, bucket, tmp_path):
    src = write(tmp_path, "src", b"meta")
    t.run("--meta", "mtime=1700000000.123456789", "--meta", "mode=0100644",
          "--content-type", "text/plain", "put", "meta/k", src)
    head = s3.head_object(Bucket=bucket, Key="meta/k")
    assert head["Metadata"] == {"mtime": "1700000000.123456789", "mode": "0100644"}
    assert head["ContentType"] == "text/plain"
    s3.put_object(Bucket=bucket, Key="meta/b", Body=b"x",
                  Metadata={"mtime": "1600000000", "Mode": "0100600"})
    info = t.json("head", "meta/b")
    assert info["meta"] == {"mtime": "1600000000", "mode": "0100600"}
    r = t.run("--meta", "x=\u00e9", "put", "meta/bad", src, check=False)
    assert r.returncode == EINVAL and b"invalid metadata" in r.stderr


# ---- list --------------------------------------------------------------------------------------

def test_list_delimiter(t, s3, bucket):
    for k in ["tree/a/1", "tree/a/2", "tree/a/b/3", "tree/c", "tree/d/4"]:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    top = t.json("list", "tree/", "/")
    assert [o["key"] for o in top["objects"]] == ["tree/c"]
    assert top["prefixes"] == ["tree/a/", "tree/d/"]
    assert top["objects"][0]["size"] == len(b"tree/c")
    assert top["objects"][0]["etag"] == md5(b"tree/c")
    sub = t.json("list", "tree/a/", "/")
    assert [o["key"] for o in sub["objects"]] == ["tree/a/1", "tree/a/2"]
    assert sub["prefixes"] == ["tree/a/b/"]
    flat = t.json("list", "tree/")
    want = s3.list_objects_v2(Bucket=bucket, Prefix="tree/")
    assert [o["key"] for o in flat["objects"]] == [o["Key"] for o in want["Contents"]]
    for mine, theirs in zip(flat["objects"], want["Contents"]):
        assert mine["last_modified"] == int(theirs["LastModified"].timestamp())
    assert t.json("list", "nothing-here/", "/") == {"objects": [], "prefixes": [],
                                                      "truncated": False}


def test_list_pagination_over_1000(t, s3, bucket):
    keys = [f"many/{i:05d}" for i in range(1050)]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    got = t.json("list", "many/")
    assert [o["key"] for o in got["objects"]] == keys and not got["truncated"]
    small = t.json("--page-size", 7, "list", "many/0000")
    assert [o["key"] for o in small["objects"]] == keys[:10]
    # delimiter across pages: prefixes are not repeated
    pre = t.json("--page-size", 3, "list", "many/", "0")
    assert pre["prefixes"] == ["many/0"] and pre["objects"] == [o for o in pre["objects"]
                                                                if not o["key"].startswith("many/0")]
    capped = t.json("--page-size", 100, "--max", 250, "list", "many/")
    assert 250 <= len(capped["objects"]) < 1050 and capped["truncated"]


# ---- delete / copy -----------------------------------------------------------------------------

def test_delete(t, s3, bucket):
    s3.put_object(Bucket=bucket, Key="del/k", Body=b"x")
    t.run("delete", "del/k")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="del/k")
    assert e.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    assert t.run("delete", "del/k").returncode == 0  # missing key: S3 says fine


def test_copy_replace_and_copy(t, s3, bucket):
    data = os.urandom(70000)
    s3.put_object(Bucket=bucket, Key="cp/src", Body=data, Metadata={"mtime": "1", "mode": "0100644"})
    etag = t.out("copy", "cp/src", "cp/same-meta")
    assert etag == md5(data)
    assert s3.head_object(Bucket=bucket, Key="cp/same-meta")["Metadata"] == {"mtime": "1",
                                                                           "mode": "0100644"}
    t.run("--replace", "--meta", "mtime=2", "--meta", "mode=0100600", "copy", "cp/src", "cp/new")
    head = s3.head_object(Bucket=bucket, Key="cp/new")
    assert head["Metadata"] == {"mtime": "2", "mode": "0100600"}
    assert get_bytes(s3, bucket, "cp/new") == data
    # in place (utimens/chmod): same key, REPLACE
    t.run("--replace", "--meta", "mtime=3", "copy", "cp/src", "cp/src")
    assert s3.head_object(Bucket=bucket, Key="cp/src")["Metadata"] == {"mtime": "3"}
    assert get_bytes(s3, bucket, "cp/src") == data
    r = t.run("copy", "cp/missing", "cp/x", check=False)
    assert r.returncode == ENOENT


# ---- multipart ---------------------------------------------------------------------------------

def test_multipart_two_parts(t, s3, bucket, tmp_path):
    data = os.urandom(5 * MiB + 4321)
    src = write(tmp_path, "big", data)
    uid = t.out("--meta", "mtime=42", "mpu-create", "mp/obj")
    assert any(u["UploadId"] == uid for u in
               s3.list_multipart_uploads(Bucket=bucket, Prefix="mp/").get("Uploads", []))
    assert [u["upload_id"] for u in t.json("mpu-list", "mp/")] == [uid]
    e1 = t.out("mpu-part", "mp/obj", uid, 1, src, 0, 5 * MiB)
    e2 = t.out("mpu-part", "mp/obj", uid, 2, src, 5 * MiB, 4321)
    assert e1 == md5(data[:5 * MiB]) and e2 == md5(data[5 * MiB:])
    want = hashlib.md5(bytes.fromhex(e1) + bytes.fromhex(e2)).hexdigest() + "-2"
    assert t.out("mpu-complete", "mp/obj", uid, f"1:{e1}", f"2:{e2}") == want
    assert get_bytes(s3, bucket, "mp/obj") == data
    head = s3.head_object(Bucket=bucket, Key="mp/obj")
    assert head["Metadata"] == {"mtime": "42"} and head["ContentLength"] == len(data)
    assert head["ETag"].strip('"') == want
    assert t.json("mpu-list", "mp/") == []


def test_multipart_abort(t, s3, bucket, tmp_path):
    src = write(tmp_path, "p", os.urandom(1000))
    uid = t.out("mpu-create", "ab/obj")
    t.run("mpu-part", "ab/obj", uid, 1, src, 0, 1000)
    t.run("mpu-abort", "ab/obj", uid)
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix="ab/").get("Uploads", []) == []
    assert t.json("mpu-list", "ab/") == []
    r = t.run("mpu-abort", "ab/obj", uid, check=False)
    assert r.returncode == ENOENT and b"NoSuchUpload" in r.stderr
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="ab/obj")


def test_multipart_list_pages(t, s3, bucket):
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=f"ml/{i}")["UploadId"] for i in range(5)]
    try:
        got = t.json("--page-size", 2, "mpu-list", "ml/")
        assert sorted(u["upload_id"] for u in got) == sorted(ids)
    finally:
        for i, uid in enumerate(ids):
            t.run("mpu-abort", f"ml/{i}", uid)
    assert t.json("mpu-list", "ml/") == []


def test_upload_command(t, s3, bucket, tmp_path):
    data = os.urandom(11 * MiB + 5)
    src = write(tmp_path, "big", data)
    t.run("upload", "up/obj", src, 5 * MiB)
    assert get_bytes(s3, bucket, "up/obj") == data


# ---- integrity ---------------------------------------------------------------------------------

def test_wrong_content_md5_rejected(t, s3, bucket, tmp_path):
    src = write(tmp_path, "x", b"payload")
    for mode in ("put", "put-mem"):
        r = t.run("--corrupt-md5", mode, f"bad/{mode}", src, check=False)
        assert r.returncode != 0 and b"BadDigest" in r.stderr, r.stderr
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=f"bad/{mode}")
    uid = t.out("mpu-create", "bad/mp")
    r = t.run("--corrupt-md5", "mpu-part", "bad/mp", uid, 1, src, 0, 7, check=False)
    assert r.returncode != 0 and b"BadDigest" in r.stderr
    t.run("mpu-abort", "bad/mp", uid)


def test_complete_with_wrong_etag_fails(t, tmp_path):
    src = write(tmp_path, "x", b"abc")
    uid = t.out("mpu-create", "bad/etag")
    t.run("mpu-part", "bad/etag", uid, 1, src, 0, 3)
    r = t.run("mpu-complete", "bad/etag", uid, "1:" + "0" * 32, check=False)
    assert r.returncode != 0
    t.run("mpu-abort", "bad/etag", uid)


def test_virtual_host_style(t, rgw, s3, bucket, tmp_path):
    src = write(tmp_path, "v", b"vhost")
    endpoint = f"http://localhost:{rgw.port}"
    t.run("--virtual-host", "put", "vh/k", src, endpoint=endpoint)
    assert get_bytes(s3, bucket, "vh/k") == b"vhost"
    assert [o["key"] for o in t.json("--virtual-host", "list", "vh/", endpoint=endpoint)
            ["objects"]] == ["vh/k"]


# ---- through the fault proxy -------------------------------------------------------------------

@pytest.fixture
def proxy(rgw):
    with FaultProxy(rgw.endpoint) as p:
        yield p


def test_503_on_upload_part_retried(t, s3, bucket, proxy, tmp_path):
    data = os.urandom(6 * MiB)
    src = write(tmp_path, "big", data)
    proxy.fail(kind="UploadPart", times=2)
    t.run("upload", "fault/503", src, 5 * MiB, endpoint=proxy.endpoint)
    assert proxy.counts["UploadPart"] == 4  # 2 parts + 2 injected failures
    assert get_bytes(s3, bucket, "fault/503") == data


def test_503_exhausted_fails_with_eio(t, proxy, tmp_path):
    src = write(tmp_path, "x", b"x")
    proxy.fail(kind="PutObject", times=None)
    r = t.run("--max-attempts", 2, "put", "fault/never", src, endpoint=proxy.endpoint, check=False)
    assert r.returncode == EIO and b"ServiceUnavailable" in r.stderr
    assert proxy.counts["PutObject"] == 2


def test_reset_mid_body_put_rewound(t, s3, bucket, proxy, tmp_path):
    data = os.urandom(3 * MiB + 7)
    src = write(tmp_path, "big", data)
    proxy.reset_after(1 * MiB, kind="PutObject")
    assert t.out("put", "fault/reset", src, endpoint=proxy.endpoint) == md5(data)
    assert proxy.counts["PutObject"] == 2
    assert get_bytes(s3, bucket, "fault/reset") == data


def test_reset_mid_body_upload_part_rewound(t, s3, bucket, proxy, tmp_path):
    data = os.urandom(5 * MiB + 100)
    src = write(tmp_path, "big", data)
    proxy.reset_after(2 * MiB, kind="UploadPart")
    t.run("upload", "fault/reset-part", src, 5 * MiB, endpoint=proxy.endpoint)
    assert proxy.counts["UploadPart"] == 3
    assert get_bytes(s3, bucket, "fault/reset-part") == data


def test_complete_answer_lost(t, s3, bucket, proxy, tmp_path):
    """The server completes the upload but the client gets a reset: not retried blindly; the
    object is found by HeadObject with the expected multipart ETag."""
    data = os.urandom(5 * MiB + 1)
    src = write(tmp_path, "big", data)
    # times=2: libcurl itself silently resends a request once when a REUSED connection dies
    # before any answer byte ("Connection died, retrying a fresh connect"), idempotent or not;
    # the second reset makes the failure reach kvsfs.
    proxy.reset_after(1 << 30, kind="CompleteMultipartUpload", times=2)
    r = t.run("-d", "upload", "fault/lost", src, 5 * MiB, endpoint=proxy.endpoint)
    assert b"answer was lost" in r.stderr
    assert proxy.counts["CompleteMultipartUpload"] in (1, 2)
    assert all(x.status == 200 for x in proxy.log if x.kind == "CompleteMultipartUpload")
    assert get_bytes(s3, bucket, "fault/lost") == data


def test_complete_503_sent_again(t, s3, bucket, proxy, tmp_path):
    data = os.urandom(100)
    src = write(tmp_path, "small", data)
    proxy.fail(kind="CompleteMultipartUpload", times=1)
    t.run("upload", "fault/complete503", src, 5 * MiB, endpoint=proxy.endpoint)
    assert proxy.counts["CompleteMultipartUpload"] == 2
    assert get_bytes(s3, bucket, "fault/complete503") == data


def test_get_retried_after_503(t, s3, bucket, proxy, tmp_path):
    data = os.urandom(200000)
    s3.put_object(Bucket=bucket, Key="fault/get", Body=data)
    proxy.fail(kind="GetObject", times=2)
    out = tmp_path / "out"
    t.run("-o", out, "get", "fault/get", endpoint=proxy.endpoint)
    assert out.read_bytes() == data and proxy.counts["GetObject"] == 3


# ---- a lying server: checks that do not trust the answer ----------------------------------------

class _Liar:
    """A stdlib HTTP stand-in answering what a broken or hostile S3 server might (signatures are
    not checked). self.calls counts (method, path) pairs."""

    def __init__(self):
        import http.server
        import threading
        liar = self
        self.calls = {}

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                path, _, query = self.path.partition("?")
                key = (self.command, path)
                liar.calls[key] = liar.calls.get(key, 0) + 1
                if path == "/bkt/ignore-range":
                    return self._send(200, b"0123456789")
                if path == "/bkt/short-range":
                    return self._send(206, b"234", [("Content-Range", "bytes 2-4/10")])
                if path == "/bkt/bad-etag":
                    return self._send(200, b"", [("ETag", '"' + "0" * 32 + '"')])
                if path == "/bkt/copy-error":
                    return self._send(200, b"<Error><Code>InternalError</Code><Message>m"
                                      b"</Message></Error>")
                if path == "/bkt" and "list-type=2" in query and "prefix=trunc" in query:
                    return self._send(200, b"<ListBucketResult><IsTruncated>true</IsTruncated>"
                                      b"<Contents><Key>trunc/a</Key><Size>1</Size></Contents>"
                                      b"</ListBucketResult>")
                if path == "/bkt" and "list-type=2" in query:
                    return self._send(200, b"<ListBucketResult><Contents><Key>a</Key>")
                if path == "/bkt/wrong-complete" and self.command == "POST":
                    return self._send(200, b"<CompleteMultipartUploadResult><ETag>\"" + b"1" * 32
                                      + b"-1\"</ETag></CompleteMultipartUploadResult>")
                if path == "/bkt/error-complete" and self.command == "POST":
                    return self._send(200, b"<Error><Code>InternalError</Code></Error>")
                return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def liar():
    s = _Liar()
    try:
        yield s
    finally:
        s.close()


def test_untrusted_answers(t, liar, tmp_path):
    src = write(tmp_path, "x", b"x")
    run = lambda *a: t.run("--max-attempts", 1, *a, endpoint=liar.endpoint, bucket="bkt",
                           check=False)
    r = run("get", "ignore-range", 2, 3)
    assert r.returncode == EIO and b"not the requested range" in r.stderr
    r = run("get", "short-range", 2, 5)
    assert r.returncode == EIO
    r = run("put", "bad-etag", src)
    assert r.returncode == EIO and b"is not the MD5" in r.stderr
    r = run("put-mem", "bad-etag", src)
    assert r.returncode == EIO
    r = run("copy", "a", "copy-error")
    assert r.returncode == EIO and b"InternalError" in r.stderr
    assert liar.calls[("PUT", "/bkt/copy-error")] == 3      # embedded retryable error repeated
    r = run("list", "trunc/")
    assert r.returncode == EIO and b"continuation token" in r.stderr
    r = run("list", "x")
    assert r.returncode == EIO and b"malformed" in r.stderr
    r = run("mpu-complete", "wrong-complete", "id", "1:" + "2" * 32)
    assert r.returncode == EIO and b"expected" in r.stderr
    r = run("mpu-complete", "error-complete", "id", "1:" + "2" * 32)
    assert r.returncode == EIO and b"InternalError" in r.stderr
    assert liar.calls[("POST", "/bkt/error-complete")] == 3      # S3_COMPLETE_TRIES, not more
    assert liar.calls[("HEAD", "/bkt/error-complete")] == 3      # asked each time
