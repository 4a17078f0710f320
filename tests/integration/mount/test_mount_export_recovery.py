"""export/ after a crash: kill -9 of the daemon during a multipart upload, then a new mount with
the same cache folder aborts the multipart upload kvsfs started (it recorded it in the staging
folder), and only that one: another client's upload under the same prefix stays.

The AWS CLI (list-multipart-uploads) and boto3 are the independent observers; a FaultProxy in
front of the gateway counts kvsfs's S3 requests. Works whether the Mount fixture runs kvsfs with
-f or in the background (Mount.kill_hard finds and reaps the daemon either way)."""
import glob
import json
import os
import subprocess

import pytest

from s3_local.proxy import FaultProxy

MiB = 1 << 20
BUCKET = "exports"


@pytest.fixture(scope="module")
def stack(export_stack):
    return export_stack.rgw, export_stack.kvs


@pytest.fixture
def proxy(export_stack):
    with FaultProxy(export_stack.rgw.endpoint) as p:
        yield p


@pytest.fixture
def xmount(xmount, proxy):
    """make(prefix, **opts): the mount fixture's xmount with export/ reached through the proxy."""
    def make(prefix, **opts):
        return xmount(prefix, endpoint=proxy.endpoint, **opts)
    return make


def aws_uploads(rgw, prefix):
    """(Key, UploadId) of the multipart uploads under prefix, as the AWS CLI lists them."""
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3api",
                        "list-multipart-uploads", "--bucket", BUCKET, "--prefix", prefix,
                        "--output", "json"], env=rgw.aws_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    return sorted((u["Key"], u["UploadId"]) for u in out.get("Uploads") or [])


def stored_size(s3, key):
    """The object's size, or None when absent. dd closes a duplicate of its descriptor before
    writing, which legitimately stores the then-empty file (a state the file had at a close)."""
    from botocore.exceptions import ClientError
    try:
        return s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    except ClientError:
        return None


def records(m):
    return sorted(glob.glob(os.path.join(m.cache, "staging", "*.upload")))


def start_copy(m, proxy, tmp_path, name, held_back=4 * MiB):
    """A copy of a 40 MB file into export/NAME that has written all but its last held_back bytes
    (dd from a pipe the test holds open), once kvsfs has sent 2 parts (8 MiB each) of its
    multipart upload. Returns (dd process, the stdin pipe)."""
    data = os.urandom(40 * 1000 * 1000)
    dd = subprocess.Popen(["dd", f"of={m.path('export', name)}", "bs=1M", "iflag=fullblock"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dd.stdin.write(data[:len(data) - held_back])
    dd.stdin.flush()
    assert proxy.wait_for("UploadPart", 2, timeout=120), m.log()
    return dd


def finish_dd(dd):
    try:
        dd.stdin.close()
    except OSError:
        pass
    dd.wait(timeout=60)


def test_kill_during_multipart_upload_then_remount_aborts_it(stack, xmount, proxy, tmp_path):
    rgw, _ = stack
    s3 = rgw.s3()
    m = xmount("recov")
    m.expect_log(r"staging file\(s\) of an earlier run")  # the leftover is reported (a warning)
    dd = start_copy(m, proxy, tmp_path, "big.bin")
    try:
        ours = aws_uploads(rgw, "recov/")
        assert [k for k, _ in ours] == ["recov/big.bin"]       # the upload is in progress
        assert len(records(m)) == 1                            # and recorded in the staging folder
        m.kill_hard()
    finally:
        finish_dd(dd)
    assert dd.returncode != 0                                  # the copy did not complete
    assert aws_uploads(rgw, "recov/") == ours                  # left behind by the crash
    # another client's upload under the same prefix, with a part
    other = s3.create_multipart_upload(Bucket=BUCKET, Key="recov/other.bin")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="recov/other.bin", UploadId=other, PartNumber=1,
                   Body=b"o" * 1000)
    proxy.reset_counters()
    m.start()
    try:
        assert aws_uploads(rgw, "recov/") == [("recov/other.bin", other)]
        assert proxy.counts["AbortMultipartUpload"] == 1        # ours only
        upload_id = ours[0][1]
        lines = [ln for ln in m.log().splitlines() if "aborted multipart upload" in ln]
        assert len(lines) == 1, m.log()
        assert lines[0].startswith("kvsfs[info] export:") and upload_id in lines[0]
        assert "s3://exports/recov/big.bin" in lines[0]
        assert records(m) == []
        assert stored_size(s3, "recov/big.bin") in (None, 0)     # no partial data stored
        # the mount works on: a new copy of the file is stored whole
        src = tmp_path / "again.bin"
        src.write_bytes(os.urandom(20 * MiB))
        subprocess.run(["cp", str(src), m.path("export", "big.bin")], check=True, timeout=300)
        got = s3.get_object(Bucket=BUCKET, Key="recov/big.bin")["Body"].read()
        assert got == src.read_bytes()
        assert aws_uploads(rgw, "recov/") == [("recov/other.bin", other)]
        assert records(m) == []                                 # completed: record removed
    finally:
        s3.abort_multipart_upload(Bucket=BUCKET, Key="recov/other.bin", UploadId=other)


def test_second_mount_on_the_same_cache_folder_touches_nothing(stack, xmount, proxy, tmp_path):
    rgw, _ = stack
    m = xmount("shared")
    dd = start_copy(m, proxy, tmp_path, "f.bin")
    try:
        ours = aws_uploads(rgw, "shared/")
        assert len(ours) == 1 and len(records(m)) == 1
        m2 = xmount("shared", name="r-second", start=False)
        m2.cache = m.cache                                      # the same cache folder
        m2.expect_log(r".")
        with pytest.raises(AssertionError):
            m2.start()
        assert "in use by another kvsfs mount" in m2.log()
        assert not os.path.ismount(m2.dir)
        assert aws_uploads(rgw, "shared/") == ours             # the live upload is untouched
        assert len(records(m)) == 1
        dd.stdin.write(os.urandom(4 * MiB))                     # the copy finishes normally
    finally:
        finish_dd(dd)
    assert dd.returncode == 0, dd.stderr.read().decode()
    head = rgw.s3().head_object(Bucket=BUCKET, Key="shared/f.bin")
    assert head["ContentLength"] == 40 * 1000 * 1000
    assert aws_uploads(rgw, "shared/") == [] and records(m) == []
