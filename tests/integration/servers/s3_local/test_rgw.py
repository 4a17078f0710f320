"""The local S3 server (scripts/s3-local, Ceph RADOS Gateway) is real and strict, and the
fault-injecting proxy (s3_local.proxy) does what kvsfs's failure tests need.

Independent clients: boto3, /usr/bin/aws, and raw requests signed with botocore's SigV4 signer
sent with http.client (to send what a well-behaved client never would). One cluster per module.
"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.request

import pytest

from s3_local import FaultProxy, classify
from s3_local.testing import SCRIPT, free_port, have_packages

pytestmark = pytest.mark.skipif(
    not have_packages(), reason="RADOS Gateway not installed (apt-get install -y radosgw ceph-mon ceph-osd ceph-common)")

MiB = 1 << 20

botocore = pytest.importorskip("botocore")
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError  # noqa: E402


@pytest.fixture
def bucket(rgw, s3):
    name = rgw.make_bucket()
    yield name
    # best effort: empty and remove it (the gateway may have been stopped by a failing test)
    try:
        for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for o in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=o["Key"])
        s3.delete_bucket(Bucket=name)
    except Exception:
        pass


@pytest.fixture
def proxy(rgw):
    p = FaultProxy(rgw.endpoint)
    try:
        yield p
    finally:
        p.close()


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


class _PayloadHash(S3SigV4Auth):
    """botocore's S3 SigV4 signer with a chosen x-amz-content-sha256 value."""

    def __init__(self, creds, region, payload_hash):
        super().__init__(creds, "s3", region)
        self._hash = payload_hash

    def payload(self, request):
        return self._hash if self._hash is not None else super().payload(request)


def signed_request(rgw, method, path, body=b"", headers=None, *, endpoint=None,
                   secret_key=None, payload_hash=None, signed_host=None, sent_host=None):
    """Send one SigV4-signed request with http.client; returns (status, headers, body).
    signed_host: the host:port to sign for; sent_host: the Host header to send (both default
    to the endpoint's)."""
    ep = endpoint or rgw.endpoint
    host = ep.split("//", 1)[1]
    signed_host = signed_host or host
    req = AWSRequest(method=method, url=f"http://{signed_host}{path}", data=body,
                     headers=dict(headers or {}))
    _PayloadHash(Credentials(rgw.access_key, secret_key or rgw.secret_key), rgw.region,
                 payload_hash).add_auth(req)
    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", sent_host or signed_host)
        conn.putheader("Content-Length", str(len(body)))
        for k, v in req.headers.items():
            if k.lower() not in ("host", "content-length"):
                conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def xml_code(body: bytes) -> str:
    import re
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else ""


# --- the server is real ---------------------------------------------------------------------------

def test_anonymous_root_and_signed_list_buckets(rgw, s3, bucket):
    with urllib.request.urlopen(rgw.endpoint + "/", timeout=10) as r:
        assert b"ListAllMyBucketsResult" in r.read()
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    out = rgw.aws("s3api", "list-buckets")
    assert bucket in [b["Name"] for b in json.loads(out.stdout)["Buckets"]]


def test_put_get_head_delete(s3, bucket):
    data = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=data)
    assert put["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == len(data)
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == data
    s3.delete_object(Bucket=bucket, Key="dir/obj.bin")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert status_of(e) == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert code_of(e) == "NoSuchKey"


def test_aws_cli_upload_download(rgw, s3, bucket, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    rgw.aws("s3", "cp", str(src), f"s3://{bucket}/cli/src.bin")
    assert s3.get_object(Bucket=bucket, Key="cli/src.bin")["Body"].read() == src.read_bytes()
    s3.put_object(Bucket=bucket, Key="cli/boto.txt", Body=b"from boto3")
    dst = tmp_path / "dst.txt"
    rgw.aws("s3", "cp", f"s3://{bucket}/cli/boto.txt", str(dst))
    assert dst.read_bytes() == b"from boto3"
    ls = rgw.aws("s3", "ls", f"s3://{bucket}/cli/").stdout.decode()
    assert "src.bin" in ls and "boto.txt" in ls


def test_list_delimiter_and_pagination(rgw, s3, bucket):
    keys = [f"top{i:02d}" for i in range(5)] + [f"a/{i:02d}" for i in range(12)] + \
           [f"b/c/{i:02d}" for i in range(3)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [c["Prefix"] for c in r["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in r["Contents"]] == [f"top{i:02d}" for i in range(5)]
    r = s3.list_objects_v2(Bucket=bucket, Prefix="b/", Delimiter="/")
    assert [c["Prefix"] for c in r["CommonPrefixes"]] == ["b/c/"] and "Contents" not in r
    # V2 pagination by continuation token, 7 per page
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, MaxKeys=7, **kw)
        pages += 1
        seen += [o["Key"] for o in r["Contents"]]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert seen == sorted(keys) and pages == 3
    # V1 pagination by marker
    r = s3.list_objects(Bucket=bucket, MaxKeys=10)
    assert r["IsTruncated"] and len(r["Contents"]) == 10
    r2 = s3.list_objects(Bucket=bucket, Marker=r["Contents"][-1]["Key"], MaxKeys=100)
    assert [o["Key"] for o in r["Contents"] + r2["Contents"]] == sorted(keys)
    # the CLI pages through with a small page size
    out = rgw.aws("s3api", "list-objects-v2", "--bucket", bucket, "--page-size", "4")
    assert [o["Key"] for o in json.loads(out.stdout)["Contents"]] == sorted(keys)


def test_ranged_get(rgw, s3, bucket, tmp_path):
    data = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    r = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert r["Body"].read() == data[10:20]
    assert r["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=10000-")["Body"].read() == data[10000:]
    # a range past the end is clipped; one starting past the end is 416
    assert s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data) - 3}-99999")["Body"].read() == data[-3:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert code_of(e) == "InvalidRange" and status_of(e) == 416
    out = tmp_path / "part"
    rgw.aws("s3api", "get-object", "--bucket", bucket, "--key", "r", "--range", "bytes=100-199", str(out))
    assert out.read_bytes() == data[100:200]


def test_user_metadata_round_trip(rgw, s3, bucket):
    mtime = "1763715600.123456789"
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"mtime": mtime, "mode": "0644"},
                  ContentType="video/mp4")
    h = s3.head_object(Bucket=bucket, Key="m")
    assert h["Metadata"] == {"mtime": mtime, "mode": "0644"}
    assert h["ContentType"] == "video/mp4"
    assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-mtime"] == mtime
    assert s3.get_object(Bucket=bucket, Key="m")["Metadata"]["mtime"] == mtime
    # written by the CLI, read by boto3, and the other way round
    rgw.aws("s3api", "put-object", "--bucket", bucket, "--key", "m2", "--metadata", "mtime=42")
    assert s3.head_object(Bucket=bucket, Key="m2")["Metadata"] == {"mtime": "42"}
    out = json.loads(rgw.aws("s3api", "head-object", "--bucket", bucket, "--key", "m").stdout)
    assert out["Metadata"]["mtime"] == mtime


def test_multipart_upload_complete(rgw, s3, bucket):
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(MiB + 123)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp/video.mkv", Metadata={"mtime": "7"})
    uid = up["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("mp/video.mkv", uid)]
    cli = json.loads(rgw.aws("s3api", "list-multipart-uploads", "--bucket", bucket).stdout)
    assert [u["UploadId"] for u in cli["Uploads"]] == [uid]
    etags = []
    for n, d in enumerate(parts_data, 1):
        r = s3.upload_part(Bucket=bucket, Key="mp/video.mkv", UploadId=uid, PartNumber=n, Body=d)
        assert r["ETag"].strip('"') == hashlib.md5(d).hexdigest()
        etags.append(r["ETag"])
    lp = s3.list_parts(Bucket=bucket, Key="mp/video.mkv", UploadId=uid)
    assert [(p["PartNumber"], p["Size"]) for p in lp["Parts"]] == [(1, 5 * MiB), (2, 5 * MiB), (3, MiB + 123)]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp/video.mkv", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    head = s3.head_object(Bucket=bucket, Key="mp/video.mkv")
    want = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
    assert head["ETag"].strip('"') == want
    assert head["ContentLength"] == sum(map(len, parts_data))
    assert head["Metadata"] == {"mtime": "7"}
    body = s3.get_object(Bucket=bucket, Key="mp/video.mkv")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts_data)).digest()
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_multipart_abort(rgw, s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=uid, PartNumber=1, Body=os.urandom(5 * MiB))
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    rgw.aws("s3api", "abort-multipart-upload", "--bucket", bucket, "--key", "gone", "--upload-id", uid)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="gone", UploadId=uid, PartNumber=2, Body=b"late")
    assert code_of(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="gone")
    assert status_of(e) == 404


def test_multipart_small_part_rejected(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="small", UploadId=uid, PartNumber=n,
                            Body=os.urandom(MiB))["ETag"] for n in (1, 2)]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="small", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)]})
    assert code_of(e) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=uid)


# --- the server is strict -------------------------------------------------------------------------

def test_wrong_secret_rejected(rgw, bucket):
    bad = rgw.s3(secret_key=rgw.secret_key[:-1] + ("x" if rgw.secret_key[-1] != "x" else "y"))
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket=bucket, Key="nope", Body=b"x")
    assert code_of(e) == "SignatureDoesNotMatch" and status_of(e) == 403
    with pytest.raises(ClientError) as e:
        bad.list_objects_v2(Bucket=bucket)
    assert code_of(e) == "SignatureDoesNotMatch"
    env = rgw.aws_env()
    env["AWS_SECRET_ACCESS_KEY"] = "wrong" + rgw.secret_key[5:]
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "--debug", "s3api",
                        "list-objects-v2", "--bucket", bucket], env=env, capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"SignatureDoesNotMatch" in r.stderr   # awscli 2.9 itself crashes on RGW's empty <Message>


def test_unknown_access_key_and_anonymous_write_rejected(rgw, bucket):
    with pytest.raises(ClientError) as e:
        rgw.s3(access_key="NOSUCHKEY0000000000X").list_objects_v2(Bucket=bucket)
    assert code_of(e) == "InvalidAccessKeyId" and status_of(e) == 403
    req = urllib.request.Request(f"{rgw.endpoint}/{bucket}/anon", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403


def test_wrong_content_md5_rejected(rgw, s3, bucket):
    body = b"the body"
    wrong = base64.b64encode(hashlib.md5(b"another body").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=wrong)
    assert code_of(e) == "BadDigest" and status_of(e) == 400
    with pytest.raises(ClientError) as e:           # base64, but 3 bytes
        s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5="AAAA")
    assert code_of(e) == "InvalidDigest" and status_of(e) == 400
    with pytest.raises(ClientError) as e:           # not base64: RGW says AccessDenied
        s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5="!!!!")
    assert status_of(e) in (400, 403)
    # (RGW 16.2 never answers a base64 Content-MD5 of 5 or 17 bytes: not tested here)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="md5mp")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="md5mp", UploadId=uid, PartNumber=1, Body=body, ContentMD5=wrong)
    assert code_of(e) == "BadDigest"
    s3.abort_multipart_upload(Bucket=bucket, Key="md5mp", UploadId=uid)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="md5")
    right = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=right)
    # the CLI sends its own Content-MD5: a wrong one given on the command line is refused too
    r = rgw.aws("s3api", "put-object", "--bucket", bucket, "--key", "md5cli", "--content-md5", wrong,
                check=False)
    assert r.returncode != 0


def test_wrong_content_sha256_rejected(rgw, s3, bucket):
    body = b"payload"
    st, _, resp = signed_request(rgw, "PUT", f"/{bucket}/sha", body,
                                 payload_hash=hashlib.sha256(b"other").hexdigest())
    assert st == 400 and xml_code(resp) == "XAmzContentSHA256Mismatch", (st, resp)
    st, _, resp = signed_request(rgw, "PUT", f"/{bucket}/sha", body, payload_hash="not-a-hash")
    assert st in (400, 403), (st, resp)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="sha")
    # the same request with the right hash, and with UNSIGNED-PAYLOAD, is accepted
    st, _, resp = signed_request(rgw, "PUT", f"/{bucket}/sha", body)
    assert st == 200, resp
    st, _, resp = signed_request(rgw, "PUT", f"/{bucket}/sha2", body, payload_hash="UNSIGNED-PAYLOAD")
    assert st == 200, resp
    assert s3.get_object(Bucket=bucket, Key="sha2")["Body"].read() == body
    # a signed header changed after signing breaks the signature
    st, _, resp = signed_request(rgw, "PUT", f"/{bucket}/sha3", body, secret_key="x" * 40)
    assert st == 403 and xml_code(resp) == "SignatureDoesNotMatch"


def test_signature_covers_the_host_header_not_the_address(rgw, s3, bucket):
    """RGW checks SigV4 against the Host header it receives, whatever its own address: a
    proxy that forwards Host unchanged keeps signatures valid; a changed Host breaks them.
    (Host names: an IP or "localhost" means path-style, "BUCKET.localhost" virtual-host style;
    any other name is taken as a bucket name, see README.)"""
    for host in ("127.0.0.1:9999", "localhost:9999"):
        st, _, resp = signed_request(rgw, "PUT", f"/{bucket}/h", host.encode(), signed_host=host)
        assert st == 200, resp
        assert s3.get_object(Bucket=bucket, Key="h")["Body"].read() == host.encode()
    st, _, resp = signed_request(rgw, "GET", f"/{bucket}/h", signed_host="127.0.0.1:9999",
                                 sent_host="127.0.0.1:9998")
    assert st == 403 and xml_code(resp) == "SignatureDoesNotMatch"
    # virtual-host style: bucket in the Host
    st, _, resp = signed_request(rgw, "GET", "/h", signed_host=f"{bucket}.localhost:{rgw.port}")
    assert (st, resp) == (200, b"localhost:9999")


# --- the proxy ------------------------------------------------------------------------------------

def test_classify():
    assert classify("GET", "/") == "ListBuckets"
    assert classify("PUT", "/b") == "CreateBucket"
    assert classify("GET", "/b?list-type=2&prefix=a%2F&delimiter=%2F") == "ListObjectsV2"
    assert classify("GET", "/b?uploads") == "ListMultipartUploads"
    assert classify("PUT", "/b/k") == "PutObject"
    assert classify("PUT", "/b/k", [("x-amz-copy-source", "/b/j")]) == "CopyObject"
    assert classify("POST", "/b/k?uploads") == "CreateMultipartUpload"
    assert classify("PUT", "/b/k?partNumber=2&uploadId=x") == "UploadPart"
    assert classify("POST", "/b/k?uploadId=x") == "CompleteMultipartUpload"
    assert classify("DELETE", "/b/k?uploadId=x") == "AbortMultipartUpload"
    assert classify("GET", "/b/k?uploadId=x") == "ListParts"
    assert classify("HEAD", "/b/a/b/c") == "HeadObject"
    assert classify("GET", "/b/k?response-content-type=x") == "GetObject"


def test_proxy_passes_requests_through(rgw, bucket, proxy, tmp_path):
    ps3 = rgw.s3(proxy.endpoint)   # signs for 127.0.0.1:<proxy port>, forwarded unchanged
    data = os.urandom(2 * MiB)
    ps3.put_object(Bucket=bucket, Key="p/one", Body=data, Metadata={"mtime": "5"})
    assert ps3.get_object(Bucket=bucket, Key="p/one")["Body"].read() == data
    assert ps3.get_object(Bucket=bucket, Key="p/one", Range="bytes=1-3")["Body"].read() == data[1:4]
    assert ps3.head_object(Bucket=bucket, Key="p/one")["Metadata"] == {"mtime": "5"}
    assert [o["Key"] for o in ps3.list_objects_v2(Bucket=bucket)["Contents"]] == ["p/one"]
    # a multipart upload by the CLI (8 MiB chunks) through the proxy
    src = tmp_path / "big"
    src.write_bytes(os.urandom(17 * MiB))
    rgw.aws("s3", "cp", str(src), f"s3://{bucket}/p/big", endpoint=proxy.endpoint)
    assert rgw.s3().head_object(Bucket=bucket, Key="p/big")["ContentLength"] == 17 * MiB
    c = proxy.counts
    assert c["PutObject"] == 1 and c["HeadObject"] >= 1 and c["ListObjectsV2"] == 1
    assert c["CreateMultipartUpload"] == 1 and c["UploadPart"] == 3 and c["CompleteMultipartUpload"] == 1
    assert c["GetObject"] == 2 and not proxy.faults
    assert all(s.action == "forward" and s.status in (200, 206) for s in proxy.log)


def test_proxy_fail_next_n(rgw, bucket, proxy):
    ps3 = rgw.s3(proxy.endpoint)
    proxy.fail_next(2)
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            ps3.put_object(Bucket=bucket, Key="f", Body=b"x" * 1000)
        assert code_of(e) == "ServiceUnavailable" and status_of(e) == 503
    ps3.put_object(Bucket=bucket, Key="f", Body=b"x" * 1000)
    assert proxy.wait_for("PutObject", 3, timeout=1) and not proxy.wait_for("PutObject", 4, timeout=0.05)
    assert proxy.faults["PutObject"] == 2 and proxy.counts["PutObject"] == 3
    assert [s.status for s in proxy.log] == [503, 503, 200]
    # botocore's own retries get past injected 503s
    proxy.fail_next(2, kind="GetObject")
    assert rgw.s3(proxy.endpoint, retries=3).get_object(Bucket=bucket, Key="f")["Body"].read() == b"x" * 1000
    assert proxy.faults["GetObject"] == 2 and proxy.counts["GetObject"] == 3
    # a 503 for a HEAD carries no body
    proxy.fail_next(1)
    with pytest.raises(ClientError) as e:
        ps3.head_object(Bucket=bucket, Key="f")
    assert status_of(e) == 503
    ps3.head_object(Bucket=bucket, Key="f")


def test_proxy_fail_only_upload_part_then_complete(rgw, bucket, proxy):
    ps3 = rgw.s3(proxy.endpoint)
    uid = ps3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    rule = proxy.fail(query="partNumber=", times=None)       # every UploadPart, until removed
    part = os.urandom(5 * MiB)
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            ps3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=part)
        assert code_of(e) == "ServiceUnavailable"
    assert ps3.list_parts(Bucket=bucket, Key="mp", UploadId=uid).get("Parts", []) == []
    proxy.remove(rule)
    etags = [ps3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n,
                             Body=part if n == 1 else b"tail")["ETag"] for n in (1, 2)]
    # now only CompleteMultipartUpload fails, once
    proxy.fail(method="POST", query="uploadId=")
    mpu = {"Parts": [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)]}
    with pytest.raises(ClientError) as e:
        ps3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload=mpu)
    assert code_of(e) == "ServiceUnavailable"
    ps3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload=mpu)
    assert ps3.head_object(Bucket=bucket, Key="mp")["ContentLength"] == 5 * MiB + 4
    assert proxy.faults == {"UploadPart": 2, "CompleteMultipartUpload": 1}
    assert proxy.counts["UploadPart"] == 4 and proxy.counts["CompleteMultipartUpload"] == 2


def test_proxy_hold_until_release(rgw, s3, bucket, proxy):
    import threading
    ps3 = rgw.s3(proxy.endpoint)
    rule = proxy.hold(kind="PutObject", path="/held")
    done = threading.Event()
    t = threading.Thread(target=lambda: (ps3.put_object(Bucket=bucket, Key="held", Body=b"h"),
                                         done.set()))
    t.start()
    assert proxy.wait_for("PutObject", 1, timeout=30)
    ps3.put_object(Bucket=bucket, Key="free", Body=b"f")     # not held: goes through meanwhile
    assert rule.waiting == 1 and not done.is_set()
    assert [(s.action, s.status) for s in proxy.log if s.kind == "PutObject"] == [
        ("hold", None), ("forward", 200)]
    proxy.release(rule)
    t.join(30)
    assert done.is_set() and rule.waiting == 0
    assert s3.get_object(Bucket=bucket, Key="held")["Body"].read() == b"h"
    assert [s.status for s in proxy.log if s.kind == "PutObject"] == [200, 200]


def test_proxy_reset_mid_body(rgw, s3, bucket, proxy):
    ps3 = rgw.s3(proxy.endpoint)
    proxy.reset_after(MiB, kind="PutObject")
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        ps3.put_object(Bucket=bucket, Key="reset", Body=os.urandom(3 * MiB))
    seen = proxy.log[-1]
    assert seen.action == "reset" and seen.body_bytes == MiB and seen.status is None
    time.sleep(0.2)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="reset")
    assert status_of(e) == 404           # the truncated upload left no object
    # mid-part reset in a multipart upload: the part is missing, a retry succeeds
    uid = ps3.create_multipart_upload(Bucket=bucket, Key="mpr")["UploadId"]
    proxy.reset_after(4 * MiB, kind="UploadPart")
    part = os.urandom(5 * MiB)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        ps3.upload_part(Bucket=bucket, Key="mpr", UploadId=uid, PartNumber=1, Body=part)
    assert proxy.log[-1].body_bytes == 4 * MiB
    time.sleep(0.2)
    assert s3.list_parts(Bucket=bucket, Key="mpr", UploadId=uid).get("Parts", []) == []
    et = ps3.upload_part(Bucket=bucket, Key="mpr", UploadId=uid, PartNumber=1, Body=part)["ETag"]
    ps3.complete_multipart_upload(Bucket=bucket, Key="mpr", UploadId=uid,
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": et}]})
    assert s3.get_object(Bucket=bucket, Key="mpr")["Body"].read() == part
    # a budget of the whole body: the server stores it, the client loses the answer
    proxy.reset_after(10 ** 9, kind="PutObject")
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        ps3.put_object(Bucket=bucket, Key="lost-answer", Body=b"y" * 5000)
    assert proxy.log[-1].body_bytes == 5000 and proxy.log[-1].status == 200
    assert s3.get_object(Bucket=bucket, Key="lost-answer")["Body"].read() == b"y" * 5000


def test_proxy_streams_chunked_bodies_verbatim():
    """Chunked request bodies are forwarded as they came (RGW itself answers 411
    MissingContentLength to a chunked PUT, as AWS does, so a plain upstream checks this)."""
    got = {}

    class Upstream(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self):
            raw = b""
            while True:
                line = self.rfile.readline()
                raw += line
                n = int(line.strip(), 16)
                chunk = self.rfile.read(n + 2)
                raw += chunk
                if n == 0:
                    break
            got["raw"], got["host"] = raw, self.headers["Host"]
            body = b"ok"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{srv.server_address[1]}") as p:
            chunks = [os.urandom(70_000), os.urandom(5), os.urandom(200_000)]
            wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
            conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            conn.putrequest("PUT", "/b/k", skip_host=True)
            conn.putheader("Host", "example.test:1234")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            conn.send(wire)
            r = conn.getresponse()
            assert (r.status, r.read()) == (200, b"ok")
            assert got == {"raw": wire, "host": "example.test:1234"}
            # the same keep-alive connection carries a second request; then a reset mid-body
            p.reset_after(1000)
            conn.putrequest("PUT", "/b/k2", skip_host=True)
            conn.putheader("Host", "example.test:1234")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
                conn.send(wire)
                conn.getresponse()
            assert p.log[-1].body_bytes == 1000 and p.log[-1].action == "reset"
            conn.close()
            assert p.counts["PutObject"] == 2
    finally:
        srv.shutdown()
        srv.server_close()


def test_proxy_gateway_down_is_502(rgw, bucket, proxy):
    ps3 = rgw.s3(proxy.endpoint)
    ps3.put_object(Bucket=bucket, Key="kept", Body=b"kept")
    rgw.stop_gateway()
    try:
        with pytest.raises(ClientError) as e:
            ps3.get_object(Bucket=bucket, Key="kept")
        assert status_of(e) == 502
        with pytest.raises(EndpointConnectionError):
            rgw.s3().get_object(Bucket=bucket, Key="kept")
    finally:
        rgw.start_gateway()
    assert ps3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"kept"


# --- lifecycle ------------------------------------------------------------------------------------

def test_gateway_killed_mid_upload_keeps_data(rgw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="before", Body=b"before")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mid")["UploadId"]
    p1 = os.urandom(5 * MiB)
    e1 = s3.upload_part(Bucket=bucket, Key="mid", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    rgw.stop_gateway(kill=True)
    try:
        # refused, or a reset on a keep-alive connection the client had pooled
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            s3.upload_part(Bucket=bucket, Key="mid", UploadId=uid, PartNumber=2, Body=b"tail")
        ok, text = rgw.status()
        assert not ok and "rgw.gw stopped" in text and "osd.0 running" in text
    finally:
        rgw.start_gateway()
    assert s3.get_object(Bucket=bucket, Key="before")["Body"].read() == b"before"
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    e2 = s3.upload_part(Bucket=bucket, Key="mid", UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mid", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket=bucket, Key="mid")["Body"].read() == p1 + b"tail"


def test_script_refuses_taken_port_and_running_dir(rgw, tmp_path):
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(SCRIPT), "start", str(tmp_path / "other"), "--port", str(rgw.port),
                        "--mon-port", str(free_port()), "--mon-v1-port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and time.monotonic() - t0 < 10
    assert r.stdout == "" and r.stderr.strip().splitlines() == [
        f"s3-local: 127.0.0.1:{rgw.port} is already in use (choose other ports with --port/--mon-port/--mon-v1-port)"]
    r = subprocess.run(["bash", str(SCRIPT), "start", str(rgw.dir)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "already running" in r.stderr
    ok, text = rgw.status()
    assert ok and f"endpoint {rgw.endpoint} ready" in text
    # the files a shell script reads
    assert (rgw.dir / "endpoint").read_text().strip() == rgw.endpoint
    out = subprocess.run(["bash", "-c", f". {rgw.dir}/credentials && echo $AWS_ACCESS_KEY_ID $S3_ENDPOINT"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [rgw.access_key, rgw.endpoint]


def test_clean_restart_keeps_data(rgw, s3, bucket):
    """Last: a clean stop saves the memstore OSD's data; start brings everything back."""
    s3.put_object(Bucket=bucket, Key="persist", Body=b"p" * 12345, Metadata={"mtime": "9"})
    rgw.stop()
    try:
        # refused, or a reset on a keep-alive connection the client had pooled
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            s3.head_object(Bucket=bucket, Key="persist")
    finally:
        rgw.start()
    h = s3.head_object(Bucket=bucket, Key="persist")
    assert h["ContentLength"] == 12345 and h["Metadata"] == {"mtime": "9"}
