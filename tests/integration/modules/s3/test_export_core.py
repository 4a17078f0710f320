"""The export core (src/fs/export/) against a real, strict S3 server (Ceph RGW, tests/s3_local),
driven through tests/tools/kvsfs-export, with boto3 as the independent reader and writer and the
fault proxy (tests/s3_local/proxy.py) counting requests and injecting failures.

Covers: copies of 0, 1, 5 MiB +- 1 and 64 MiB bytes (sequential and random writers) byte-identical
with multipart for the large ones; metadata (x-amz-meta-mtime / -mode) both ways; mkdir, rmdir
(ENOTEMPTY), unlink, rename, utimens, chmod, chown policy, truncate, append; rsync's temp-file
pattern with ONE upload of the data; parts sent while the writer still writes; failures (503 on
every UploadPart, connection resets, gateway stopped mid-upload): an error from release, no
object, no multipart upload left, staging kept, and a retry that succeeds; leftover staging files
reported at the next open; ENOSPC for a full staging area; objects put by boto3 listed with their
sizes and times; a crash (kill -9) mid multipart upload: the upload kvsfs recorded in the staging
folder is aborted at the next open (another client's upload under the same prefix is not), a
failed abort keeps the record for a later open; one export per staging folder.

Run: KVSFS_BUILD_DIR=/tmp/build-x /usr/bin/python3 -m pytest tests/integration/modules/s3 -q
"""
import hashlib
import os
import signal
import subprocess
import time

import pytest

from s3_local import FaultProxy
from s3_local.testing import have_packages

pytestmark = pytest.mark.skipif(
    not have_packages(),
    reason="RADOS Gateway not installed (apt-get install -y radosgw ceph-mon ceph-osd ceph-common)")

botocore = pytest.importorskip("botocore")
from botocore.exceptions import ClientError  # noqa: E402

MiB = 1 << 20
ENOENT, EIO, EPERM, EEXIST, ENOTDIR, EISDIR, ENOSPC, ENOTEMPTY = 2, 5, 1, 17, 20, 21, 28, 39
EFBIG = 27


@pytest.fixture(scope="module")
def bucket(rgw):
    return rgw.make_bucket()


@pytest.fixture
def proxy(rgw):
    with FaultProxy(rgw.endpoint) as p:
        yield p


class Export:
    """kvsfs-export with one prefix and staging folder per test."""

    def __init__(self, path, rgw, bucket, prefix, staging):
        self.path, self.rgw, self.bucket, self.prefix, self.staging = (
            path, rgw, bucket, prefix, staging)

    def cmd(self, *args, endpoint=None):
        return [self.path, "--endpoint", endpoint or self.rgw.endpoint, "--bucket", self.bucket,
                "--prefix", self.prefix, "--staging", str(self.staging),
                *[str(a) for a in args]]

    def run(self, *args, endpoint=None, check=True, input=None, timeout=180):
        r = subprocess.run(self.cmd(*args, endpoint=endpoint), env=self.rgw.aws_env(),
                           input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{args} failed ({r.returncode}): {r.stderr.decode()}")
        return r

    def popen(self, *args, endpoint=None):
        return subprocess.Popen(self.cmd(*args, endpoint=endpoint), env=self.rgw.aws_env(),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def stat(self, p):
        import json
        return json.loads(self.run("stat", p).stdout)

    def ls(self, d):
        out = {}
        for line in self.run("ls", d).stdout.decode().splitlines():
            name, kind, size, mtime, mode = line.split("\t")
            out[name] = (kind, int(size), int(mtime), int(mode, 8))
        return out

    def key(self, p):
        return f"{self.prefix}/{p}"


@pytest.fixture
def ex(tool, rgw, bucket, tmp_path, request):
    staging = tmp_path / "staging"
    staging.mkdir()
    return Export(tool("kvsfs-export"), rgw, bucket, request.node.name.split("[")[0][:40] +
                  hashlib.md5(request.node.name.encode()).hexdigest()[:6], staging)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def data_file(tmp_path, size, name="src"):
    p = tmp_path / name
    data = os.urandom(size)
    p.write_bytes(data)
    return p, data


def get(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def missing(s3, bucket, key) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey")


def uploads(s3, bucket, prefix):
    return s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])


def uploaded_bytes(proxy):
    return sum(s.body_bytes for s in proxy.log if s.kind in ("PutObject", "UploadPart"))


def staged(ex):
    return sorted(p.name for p in ex.staging.iterdir() if p.name.endswith(".stage"))


def records(ex):
    """The upload records kvsfs keeps in the staging folder while a multipart upload is open."""
    return sorted(p.name for p in ex.staging.iterdir() if p.name.endswith(".upload"))


# ---- copies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 64 * MiB])
@pytest.mark.parametrize("order", ["seq", "random"])
def test_copy_identical(ex, s3, bucket, proxy, tmp_path, size, order):
    if order == "random" and size < 5 * MiB:
        pytest.skip("random order is the same as sequential for one chunk")
    src, data = data_file(tmp_path, size)
    extra = ["--random"] if order == "random" else []
    ex.run("--part-size", 5 * MiB, *extra, "cp", src, "dir/f.bin", endpoint=proxy.endpoint)
    assert md5(get(s3, bucket, ex.key("dir/f.bin"))) == md5(data)   # boto3 reads it
    head = s3.head_object(Bucket=bucket, Key=ex.key("dir/f.bin"))
    assert head["ContentLength"] == size
    multipart = size > 5 * MiB
    assert ("-" in head["ETag"]) == multipart
    assert (proxy.counts["CompleteMultipartUpload"] == 1) == multipart
    assert proxy.counts["PutObject"] == (0 if multipart else 1)
    assert uploaded_bytes(proxy) == size           # every byte sent once, nothing more
    if size == 64 * MiB:
        assert proxy.counts["UploadPart"] == 13    # 12 parts of 5 MiB + the rest
    assert int(head["Metadata"]["mode"]) == 0o100644
    assert staged(ex) == []                        # staging emptied after the upload
    assert records(ex) == []                       # the upload record went with it
    r = ex.run("cat", "dir/f.bin")
    assert md5(r.stdout) == md5(data)
    if size == 5 * MiB + 1:   # reads that straddle the read-ahead windows
        assert md5(ex.run("--chunk", 100003, "cat", "dir/f.bin").stdout) == md5(data)
    assert ex.stat("dir/f.bin")["size"] == size


def test_parts_sent_while_writing(ex, s3, bucket, proxy, tmp_path):
    src, data = data_file(tmp_path, 24 * MiB)
    r = ex.run("--part-size", 5 * MiB, "--chunk", MiB, "--write-delay-us", 100000,
               "cp", src, "slow.bin", endpoint=proxy.endpoint)
    done = float(r.stdout.decode().split()[1])
    parts = [s.time for s in proxy.log if s.kind == "UploadPart"]
    assert len(parts) == 5
    assert sum(1 for t in parts if t < done) >= 3  # parts 1..3 went up during the writes
    assert md5(get(s3, bucket, ex.key("slow.bin"))) == md5(data)


# ---- metadata ----------------------------------------------------------------------------------

def test_metadata_round_trip(ex, s3, bucket, tmp_path):
    src, data = data_file(tmp_path, 1000)
    ex.run("cp", src, "m.txt")
    ex.run("touch", "m.txt", 1600000000250)
    ex.run("chmod", "m.txt", "640")
    head = s3.head_object(Bucket=bucket, Key=ex.key("m.txt"))
    assert head["Metadata"]["mtime"] == "1600000000.250"
    assert int(head["Metadata"]["mode"]) == 0o100640        # decimal, as s3fs writes it
    st = ex.stat("m.txt")
    assert st == {"is_dir": 0, "mode": 0o640, "size": 1000, "mtime_ms": 1600000000250}
    assert get(s3, bucket, ex.key("m.txt")) == data          # copy kept the data


def test_foreign_objects(ex, s3, bucket):
    s3.put_object(Bucket=bucket, Key=ex.key("plain.bin"), Body=b"x" * 1234)
    s3.put_object(Bucket=bucket, Key=ex.key("s3fs.bin"), Body=b"y",
                  Metadata={"mode": "33261", "mtime": "1500000000"})
    s3.put_object(Bucket=bucket, Key=ex.key("rclone.bin"), Body=b"z",
                  Metadata={"mode": "0600", "mtime": "1500000000.123456789"})
    s3.put_object(Bucket=bucket, Key=ex.key("sub/deep/x"), Body=b"")
    s3.put_object(Bucket=bucket, Key=ex.key("bad.bin"), Body=b"",
                  Metadata={"mode": "rwx", "mtime": "yesterday"})
    lm = s3.head_object(Bucket=bucket, Key=ex.key("plain.bin"))["LastModified"].timestamp()
    entries = ex.ls("")
    assert entries["plain.bin"][:2] == ("f", 1234)
    assert abs(entries["plain.bin"][2] / 1000 - lm) < 1
    assert entries["sub"][0] == "d"
    assert set(entries) == {"plain.bin", "s3fs.bin", "rclone.bin", "sub", "bad.bin"}
    st = ex.stat("plain.bin")
    assert st["mode"] == 0o644 and abs(st["mtime_ms"] / 1000 - lm) < 1
    assert ex.stat("s3fs.bin")["mode"] == 0o755
    assert ex.stat("s3fs.bin")["mtime_ms"] == 1500000000000
    assert ex.stat("rclone.bin")["mode"] == 0o600
    assert ex.stat("rclone.bin")["mtime_ms"] == 1500000000123
    assert ex.stat("bad.bin")["mode"] == 0o644               # unparsable: defaults
    assert ex.stat("sub")["is_dir"] == 1 and ex.stat("sub/deep")["is_dir"] == 1
    assert ex.run("stat", "nothing", check=False).returncode == ENOENT
    assert ex.ls("sub/deep") == {"x": ("f", 0, ex.ls("sub/deep")["x"][2], 0o644)}


def test_umask_defaults(ex, s3, bucket):
    s3.put_object(Bucket=bucket, Key=ex.key("u.bin"), Body=b"1")
    s3.put_object(Bucket=bucket, Key=ex.key("ud/x"), Body=b"1")
    import json
    st = json.loads(ex.run("--umask", "077", "stat", "u.bin").stdout)
    assert st["mode"] == 0o600
    st = json.loads(ex.run("--umask", "077", "stat", "ud").stdout)
    assert st["mode"] == 0o700 and st["is_dir"] == 1


# ---- namespace ---------------------------------------------------------------------------------

def test_mkdir_rmdir(ex, s3, bucket, tmp_path):
    ex.run("mkdir", "d", "750")
    head = s3.head_object(Bucket=bucket, Key=ex.key("d/"))
    assert head["ContentLength"] == 0 and int(head["Metadata"]["mode"]) == 0o40750
    assert ex.stat("d") ["is_dir"] == 1 and ex.stat("d")["mode"] == 0o750
    assert ex.ls("")["d"][0] == "d"
    assert ex.ls("d") == {}                                   # the marker is not an entry
    assert ex.run("mkdir", "d", check=False).returncode == EEXIST
    src, _ = data_file(tmp_path, 10)
    ex.run("cp", src, "d/f")
    assert ex.run("rmdir", "d", check=False).returncode == ENOTEMPTY
    assert ex.run("rmdir", "d/f", check=False).returncode == ENOTDIR
    assert ex.run("rm", "d", check=False).returncode == EISDIR
    ex.run("rm", "d/f")
    assert missing(s3, bucket, ex.key("d/f"))
    assert ex.run("rm", "d/f", check=False).returncode == ENOENT
    ex.run("rmdir", "d")
    assert missing(s3, bucket, ex.key("d/"))
    assert ex.run("stat", "d", check=False).returncode == ENOENT
    assert ex.run("rmdir", "d", check=False).returncode == ENOENT
    assert ex.run("mkdir", "no/such/parent", check=False).returncode == ENOENT
    assert ex.run("ls", "no/such", check=False).returncode == ENOENT
    ex.run("cp", src, "file")
    assert ex.run("ls", "file", check=False).returncode == ENOTDIR


def test_rename_and_chown(ex, s3, bucket, tmp_path):
    src, data = data_file(tmp_path, 3000)
    ex.run("cp", src, "a")
    ex.run("touch", "a", 1400000000000)
    ex.run("mv", "a", "b")
    assert missing(s3, bucket, ex.key("a"))
    assert get(s3, bucket, ex.key("b")) == data
    assert ex.stat("b")["mtime_ms"] == 1400000000000          # metadata travels with it
    src2, data2 = data_file(tmp_path, 10, "src2")
    ex.run("cp", src2, "c")
    ex.run("mv", "c", "b")                                    # over an existing file
    assert get(s3, bucket, ex.key("b")) == data2
    ex.run("mkdir", "dd")
    assert ex.run("mv", "dd", "ee", check=False).returncode == 18   # EXDEV: mv copies
    assert ex.run("mv", "b", "dd", check=False).returncode == EISDIR
    assert ex.run("mv", "zz", "yy", check=False).returncode == ENOENT
    uid, gid = os.getuid(), os.getgid()
    ex.run("chown", "b", uid, gid)
    ex.run("chown", "b", 4294967295, gid)
    assert ex.run("chown", "b", uid + 1, gid, check=False).returncode == EPERM
    assert ex.run("chown", "b", uid, gid + 1, check=False).returncode == EPERM


def test_truncate_and_append(ex, s3, bucket, tmp_path):
    src, data = data_file(tmp_path, 5000)
    ex.run("cp", src, "t")
    ex.run("truncate", "t", 100)
    assert get(s3, bucket, ex.key("t")) == data[:100]
    ex.run("truncate", "t", 200)
    assert get(s3, bucket, ex.key("t")) == data[:100] + b"\0" * 100
    ex.run("truncate", "t", 0)
    assert get(s3, bucket, ex.key("t")) == b""
    s3.put_object(Bucket=bucket, Key=ex.key("app"), Body=b"hello ")
    (tmp_path / "w").write_bytes(b"world")
    ex.run("append", tmp_path / "w", "app")
    assert get(s3, bucket, ex.key("app")) == b"hello world"
    assert ex.run("truncate", "nope", 1, check=False).returncode == ENOENT


# ---- rsync's pattern ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [100 * 1024, 12 * MiB])
@pytest.mark.parametrize("early", [False, True])
def test_rsync_pattern_one_upload(ex, s3, bucket, proxy, tmp_path, size, early):
    src, data = data_file(tmp_path, size)
    args = ["rsync", src, ".f.bin.Xa12Bc", "f.bin", 1700000000500, "640"] + (["early"] if early
                                                                              else [])
    ex.run("--part-size", 5 * MiB, *args, endpoint=proxy.endpoint)
    assert uploaded_bytes(proxy) == size             # the data went up exactly once
    assert missing(s3, bucket, ex.key(".f.bin.Xa12Bc"))
    assert md5(get(s3, bucket, ex.key("f.bin"))) == md5(data)
    head = s3.head_object(Bucket=bucket, Key=ex.key("f.bin"))
    assert head["Metadata"]["mtime"] == "1700000000.500"
    assert int(head["Metadata"]["mode"]) == 0o100640
    if early and size < 5 * MiB:   # metadata and rename before the upload: all in the upload
        assert proxy.counts["CopyObject"] == 0
    elif early:   # parts already went up under the temp name: one server-side copy
        assert proxy.counts["CopyObject"] == 1
    assert staged(ex) == []
    assert uploads(s3, bucket, ex.prefix) == []


# ---- failures ----------------------------------------------------------------------------------

def go(p):
    """Sends the line a --retry or beside run waits for."""
    p.stdin.write(b"go\n")
    p.stdin.flush()


def finish(p, timeout=180):
    """Waits for a run that must succeed; returns its stderr."""
    p.wait(timeout=timeout)
    err = p.stderr.read().decode()
    assert p.returncode == 0, err
    return err


def stop(p):
    """Kills a run still going (a test failed half way)."""
    if p.poll() is None:
        p.kill()
        p.wait()


def retry_flow(ex, proxy, s3, bucket, args, data, heal, key="f.bin"):
    """Runs a --retry copy that fails, checks the failure state, heals, lets it retry."""
    p = ex.popen("--retry", "--max-attempts", 2, *args, endpoint=proxy.endpoint)
    try:
        line = b""
        while not line.startswith(b"FAILED"):
            line = p.stdout.readline()
            assert line, p.stderr.read().decode()
        assert int(line.split()[1]) in (EIO, 11)
        assert missing(s3, bucket, ex.key(key))                 # nothing partial visible
        assert uploads(s3, bucket, ex.prefix) == []              # failed upload aborted
        assert len(staged(ex)) == 1                              # the data is kept
        heal()
        go(p)
        err = finish(p)
        assert "storing" in err and "failed" in err              # one line said why
    finally:
        stop(p)
    assert md5(get(s3, bucket, ex.key(key))) == md5(data)
    assert uploads(s3, bucket, ex.prefix) == []
    assert staged(ex) == []
    assert records(ex) == []                                     # aborted and completed: gone


def test_503_on_every_upload_part(ex, s3, bucket, proxy, tmp_path):
    src, data = data_file(tmp_path, 12 * MiB)
    proxy.fail(kind="UploadPart", times=None)
    retry_flow(ex, proxy, s3, bucket, ["--part-size", 5 * MiB, "cp", src, "f.bin"], data,
               proxy.pass_through)


def test_503_on_put(ex, s3, bucket, proxy, tmp_path):
    src, data = data_file(tmp_path, 1000)
    proxy.fail(kind="PutObject", times=None)
    retry_flow(ex, proxy, s3, bucket, ["--fsync", "cp", src, "f.bin"], data, proxy.pass_through)


def test_reset_mid_upload(ex, s3, bucket, proxy, tmp_path):
    src, data = data_file(tmp_path, 12 * MiB)
    proxy.reset_after(MiB, kind="UploadPart", times=None)
    retry_flow(ex, proxy, s3, bucket, ["--part-size", 5 * MiB, "cp", src, "f.bin"], data,
               proxy.pass_through)


def test_gateway_stopped_mid_upload(ex, s3, bucket, rgw, proxy, tmp_path):
    src, data = data_file(tmp_path, 30 * MiB)
    p = ex.popen("--retry", "--max-attempts", 2, "--part-size", 5 * MiB, "--chunk", MiB,
                 "--write-delay-us", 50000, "cp", src, "f.bin", endpoint=proxy.endpoint)
    try:
        assert proxy.wait_for("UploadPart", 1, timeout=60)
        rgw.stop_gateway()
        line = b""
        while not line.startswith(b"FAILED"):
            line = p.stdout.readline()
            assert line, p.stderr.read().decode()
        rgw.start_gateway()
        assert missing(s3, bucket, ex.key("f.bin"))
        assert len(staged(ex)) == 1
        go(p)
        finish(p)
    finally:
        stop(p)
        if not rgw.status()[0]:
            rgw.start_gateway()
    assert md5(get(s3, bucket, ex.key("f.bin"))) == md5(data)
    assert uploads(s3, bucket, ex.prefix) == []               # the orphan was aborted too
    assert staged(ex) == []


def test_new_copy_after_failure_and_leftover_report(ex, s3, bucket, proxy, tmp_path):
    src, data = data_file(tmp_path, 2000)
    proxy.fail(kind="PutObject", times=None)
    p = ex.popen("--retry", "--max-attempts", 1, "cp", src, "f.bin", endpoint=proxy.endpoint)
    assert p.stdout.readline().startswith(b"WRITES-DONE")
    assert p.stdout.readline().startswith(b"FAILED")
    p.send_signal(signal.SIGKILL)       # a crash while the data is only staged
    p.wait()
    left = staged(ex)
    assert len(left) == 1
    proxy.pass_through()
    r = ex.run("open-only")
    err = r.stderr.decode()
    assert left[0] in err and "f.bin" in err and "NOT uploaded" in err
    assert len([ln for ln in err.splitlines() if "staging" in ln]) == 1   # one line
    assert missing(s3, bucket, ex.key("f.bin"))               # never uploaded as complete
    ex.run("cp", src, "f.bin")                                # a new copy works
    assert get(s3, bucket, ex.key("f.bin")) == data


def test_failed_release_keeps_staging(ex, s3, bucket, proxy, tmp_path):
    src, data = data_file(tmp_path, 7 * MiB)
    proxy.fail(kind="CompleteMultipartUpload", times=None)
    r = ex.run("--max-attempts", 1, "--part-size", 5 * MiB, "cp", src, "k.bin",
               endpoint=proxy.endpoint, check=False)
    assert r.returncode == EIO, r.stderr.decode()
    assert missing(s3, bucket, ex.key("k.bin"))
    assert uploads(s3, bucket, ex.prefix) == []
    left = staged(ex)
    assert len(left) == 1 and (ex.staging / left[0]).read_bytes() == data
    proxy.pass_through()
    err = ex.run("open-only").stderr.decode()
    assert left[0] in err and "k.bin" in err


def test_fsync_then_release_uploads_once(ex, s3, bucket, proxy, tmp_path):
    src, data = data_file(tmp_path, 11 * MiB)
    ex.run("--fsync", "--part-size", 5 * MiB, "cp", src, "s.bin", endpoint=proxy.endpoint)
    assert uploaded_bytes(proxy) == len(data)
    assert md5(get(s3, bucket, ex.key("s.bin"))) == md5(data)


def test_enospc(ex, s3, bucket, tmp_path):
    src, data = data_file(tmp_path, 3 * MiB)
    r = ex.run("--staging-max", 2 * MiB, "cp", src, "big", check=False)
    assert r.returncode == ENOSPC
    assert b"staging space full" in r.stderr
    # as on a full disk, the file holds what was written before the failing write
    got = get(s3, bucket, ex.key("big"))
    assert len(got) == 2 * MiB and got == data[:len(got)]
    src2, data2 = data_file(tmp_path, MiB, "small")
    ex.run("--staging-max", 2 * MiB, "cp", src2, "small")
    assert get(s3, bucket, ex.key("small")) == data2


def test_failed_staging_write_counts_only_the_bytes_written(ex, s3, bucket, tmp_path):
    # the staging disk fills up in the middle of a write (RLIMIT_FSIZE stands for the full disk:
    # the 2nd 1 MiB write gets half way, then EFBIG): the file's size grows only by the bytes
    # that reached the staging file, and the object stored at close holds exactly those
    import json
    src, data = data_file(tmp_path, 3 * MiB)
    limit = MiB + MiB // 2
    r = ex.run("--fsize-limit", limit, "--chunk", MiB, "--stat", "cp", src, "part.bin",
               check=False)
    err = r.stderr.decode()
    assert r.returncode == EFBIG, err
    assert "writing the staging file of part.bin" in err
    st = [json.loads(ln) for ln in r.stdout.decode().splitlines() if ln.startswith("{")]
    assert [s["size"] for s in st] == [limit]                 # not 2 MiB (the failed write's end)
    got = get(s3, bucket, ex.key("part.bin"))
    assert len(got) == limit and got == data[:limit]
    assert staged(ex) == []


def test_other_files_written_while_one_uploads(ex, s3, bucket, proxy, tmp_path):
    # A's upload is held at the proxy (its PutObject has arrived and waits there): meanwhile
    # another file B is created and written whole, A is stat'ed and its folder listed. Nothing
    # waits for A's upload: no lock is held across it. (The read guard is for a hang only.)
    import queue
    import threading
    src_a, data_a = data_file(tmp_path, 3 * MiB, "a")
    src_b, data_b = data_file(tmp_path, 4 * MiB, "b")
    hold = proxy.hold(kind="PutObject", path="/a.bin")
    p = ex.popen("beside", src_a, "d/a.bin", src_b, "d/b.bin", endpoint=proxy.endpoint)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln.decode().strip()) for ln in p.stdout],
                     daemon=True).start()

    def until(prefix):
        while True:
            try:
                ln = lines.get(timeout=120)
            except queue.Empty:
                raise AssertionError(f"no {prefix} line: blocked behind A's upload?")
            if ln.startswith(prefix):
                return ln
    try:
        assert proxy.wait_for("PutObject", 1, timeout=60)       # A's upload has begun
        go(p)
        until("B-WRITTEN")
        assert until("A-SIZE") == f"A-SIZE {len(data_a)}"
        assert until("LISTED") == "LISTED 2"
        a_put = [s for s in proxy.log if s.kind == "PutObject"]
        assert len(a_put) == 1 and a_put[0].status is None     # A still uploading meanwhile
        assert hold.waiting == 1
        proxy.release(hold)
        go(p)
        finish(p)
    finally:
        stop(p)
    assert get(s3, bucket, ex.key("d/a.bin")) == data_a
    assert get(s3, bucket, ex.key("d/b.bin")) == data_b
    assert [s.status for s in proxy.log if s.kind == "PutObject"] == [200, 200]
    assert staged(ex) == []


def test_parallel_writers(ex, s3, bucket, tmp_path):
    src, data = data_file(tmp_path, 13 * MiB)
    ex.run("--part-size", 5 * MiB, "--parallel", 3, "par", 6, src, "par")
    for i in range(6):
        assert md5(get(s3, bucket, ex.key(f"par/f{i}"))) == md5(data)
    assert sorted(ex.ls("par")) == [f"f{i}" for i in range(6)]
    assert staged(ex) == []


def test_missing_bucket(ex, tool, rgw):
    r = subprocess.run([tool("kvsfs-export"), "--endpoint", rgw.endpoint, "--bucket",
                        "no-such-bucket-x", "--staging", str(ex.staging), "open-only"],
                       env=rgw.aws_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert r.returncode == ENOENT
    assert b"no-such-bucket-x does not exist" in r.stderr


def test_staged_file_visible_while_writing(ex, s3, bucket, proxy, tmp_path):
    # the writer is slow; meanwhile another process sees only the stored state
    src, data = data_file(tmp_path, 6 * MiB)
    p = ex.popen("--chunk", MiB, "--write-delay-us", 300000, "cp", src, "w.bin",
                 endpoint=proxy.endpoint)
    time.sleep(0.5)
    assert missing(s3, bucket, ex.key("w.bin"))
    p.wait(timeout=120)
    assert p.returncode == 0
    assert get(s3, bucket, ex.key("w.bin")) == data


# ---- crash recovery of multipart uploads ------------------------------------------------------

def kill_mid_upload(ex, proxy, tmp_path, name="big.bin"):
    """Starts a slow 30 MiB copy, kills it (SIGKILL) once 2 parts went up; returns the upload."""
    src, _ = data_file(tmp_path, 30 * MiB)
    p = ex.popen("--part-size", 5 * MiB, "--chunk", MiB, "--write-delay-us", 100000,
                 "cp", src, name, endpoint=proxy.endpoint)
    try:
        assert proxy.wait_for("UploadPart", 2, timeout=120), p.stderr.read().decode()
        assert len(records(ex)) == 1          # recorded before the first part
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    return p


def test_crash_mid_multipart_upload_is_aborted_at_next_open(ex, s3, bucket, proxy, tmp_path):
    kill_mid_upload(ex, proxy, tmp_path)
    ours = uploads(s3, bucket, ex.prefix)
    assert [u["Key"] for u in ours] == [ex.key("big.bin")]
    record = records(ex)
    assert len(record) == 1 and ours[0]["UploadId"] in (ex.staging / record[0]).read_text()
    other = s3.create_multipart_upload(Bucket=bucket, Key=ex.key("other.bin"))["UploadId"]
    s3.upload_part(Bucket=bucket, Key=ex.key("other.bin"), UploadId=other, PartNumber=1,
                   Body=b"x" * 1000)
    proxy.reset_counters()
    r = ex.run("-d", "open-only", endpoint=proxy.endpoint)
    err = r.stderr.decode()
    lines = [ln for ln in err.splitlines() if "aborted multipart upload" in ln]
    assert len(lines) == 1 and ours[0]["UploadId"] in lines[0] and "big.bin" in lines[0], err
    assert proxy.counts["AbortMultipartUpload"] == 1
    left = uploads(s3, bucket, ex.prefix)
    assert [(u["Key"], u["UploadId"]) for u in left] == [(ex.key("other.bin"), other)]
    assert records(ex) == []
    assert len(staged(ex)) == 1 and "NOT uploaded" in err        # the staging file is reported
    assert missing(s3, bucket, ex.key("big.bin"))
    proxy.reset_counters()
    ex.run("open-only", endpoint=proxy.endpoint)                 # nothing left to recover
    assert proxy.counts["AbortMultipartUpload"] == 0
    s3.abort_multipart_upload(Bucket=bucket, Key=ex.key("other.bin"), UploadId=other)


def test_failed_abort_at_open_keeps_the_record(ex, s3, bucket, proxy, tmp_path):
    kill_mid_upload(ex, proxy, tmp_path)
    record = records(ex)
    proxy.fail(kind="AbortMultipartUpload", times=None)
    r = ex.run("--max-attempts", 1, "open-only", endpoint=proxy.endpoint)
    err = r.stderr.decode()
    assert "could not be aborted" in err and "next mount" in err, err
    assert records(ex) == record
    assert len(uploads(s3, bucket, ex.prefix)) == 1
    proxy.pass_through()
    proxy.reset_counters()
    ex.run("open-only", endpoint=proxy.endpoint)
    assert proxy.counts["AbortMultipartUpload"] == 1
    assert uploads(s3, bucket, ex.prefix) == [] and records(ex) == []


def test_failed_abort_at_open_is_retried_before_the_next_upload(ex, s3, bucket, proxy, tmp_path):
    kill_mid_upload(ex, proxy, tmp_path)
    proxy.fail(kind="AbortMultipartUpload", times=1)
    src, data = data_file(tmp_path, 1000, "small")
    r = ex.run("--max-attempts", 1, "cp", src, "small.bin", endpoint=proxy.endpoint)
    assert "could not be aborted" in r.stderr.decode()
    assert proxy.counts["AbortMultipartUpload"] == 2             # at open, then before the put
    assert uploads(s3, bucket, ex.prefix) == [] and records(ex) == []
    assert get(s3, bucket, ex.key("small.bin")) == data


def test_record_of_another_bucket_is_kept(ex, s3, bucket, tmp_path):
    rec = ex.staging / "kvsfs-AbCdEf.upload"
    rec.write_bytes(b"kvsfs-upload 1\nbucket other-bucket\nupload-id 2~x\nkey 5\na/b.c\nend\n")
    (ex.staging / "kvsfs-Cut123.upload").write_bytes(b"kvsfs-upload 1\nbucket ")
    err = ex.run("open-only").stderr.decode()
    assert "not in this mount's bucket" in err and "other-bucket" in err, err
    assert "incomplete upload record" in err
    assert records(ex) == ["kvsfs-AbCdEf.upload"]                # the cut-short one is removed


def test_one_export_per_staging_folder(ex, proxy, tmp_path):
    src, _ = data_file(tmp_path, 6 * MiB)
    p = ex.popen("--chunk", MiB, "--write-delay-us", 300000, "cp", src, "w.bin",
                 endpoint=proxy.endpoint)
    try:
        while not any(ex.staging.glob("*.stage")):
            assert p.poll() is None, p.stderr.read().decode()
            time.sleep(0.05)
        r = ex.run("open-only", check=False)
        assert r.returncode == 16 and b"in use by another kvsfs mount" in r.stderr   # EBUSY
    finally:
        p.wait(timeout=120)
    assert p.returncode == 0
