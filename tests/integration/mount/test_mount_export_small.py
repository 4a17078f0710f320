"""export/ with many small files (default mode: close returns once stored). rsync -a of
fragment-sized files counts kvsfs's S3 requests per file at a FaultProxy in front of Ceph RGW:
at most 3 per file in the common path (PutObject of the temp file, CopyObject to the final name
with the final metadata, DeleteObject of the temp key), a second rsync copies nothing, and boto3
reads back every byte and the metadata."""
import collections
import hashlib
import os
import subprocess
import time

import pytest

pytest.importorskip("s3_local.testing")
# RGW, kvs-local, a FaultProxy in front of RGW and mounts through it: the recovery suite's
from test_mount_export_recovery import BUCKET, proxy, stack, xmount  # noqa: E402,F401


def make_small_files(root, n, seed=b"x"):
    """n files of 30-42 KB (fragment-sized) in two folders, distinct contents."""
    out = {}
    for i in range(n):
        d = root / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        size = 30000 + (i * 997) % 12000
        data = hashlib.sha256(seed + str(i).encode()).digest() * (size // 32 + 1)
        p = d / f"frag-{i:05d}.mkv"
        p.write_bytes(data[:size])
        os.utime(p, (1700000000 + i, 1700000000 + i + 0.25))
        out[str(p.relative_to(root))] = data[:size]
    return out


def test_rsync_of_small_files_costs_at_most_three_requests_each(stack, proxy, xmount, tmp_path):
    rgw, _ = stack
    src = tmp_path / "src"
    n = 60
    files = make_small_files(src, n)
    m = xmount("small")
    os.listdir(m.path("export"))
    proxy.reset_counters()
    t = time.monotonic()
    r = subprocess.run(["rsync", "-a", str(src) + "/", m.path("export") + "/"],
                       capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    log = list(proxy.log)
    print(f"\nrsync of {n} files: {took:.2f} s, {len(log)} requests: {collections.Counter(s.kind for s in log)}")
    counts = collections.Counter(s.kind for s in log)
    # the data once, the rename as one copy with the final metadata, the temp key deleted
    assert counts["PutObject"] == n + 2          # + the markers of the two folders
    assert counts["CopyObject"] <= n + 4         # + mode/mtime of the two folders (twice)
    assert counts["DeleteObject"] == n
    # lookups and stats come from what the mount knows (listed folders, files it stored), which
    # stays fresh for a second: they scale with seconds (per folder, per second: a listing and
    # the folder's stat), not with files (before: 9 or more per file)
    lookups = counts["HeadObject"] + counts["ListObjectsV2"]
    assert lookups <= 2 * 8 * (int(took) + 2), (counts, took)
    assert sum(counts.values()) - lookups <= 3 * n + 6, counts
    assert counts["UploadPart"] == 0
    s3 = rgw.s3()
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="small/"):
        keys.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    assert sorted(k for k in keys if not k.endswith("/")) == sorted("small/" + p for p in files)
    for i, (p, data) in enumerate(sorted(files.items())[:6]):
        o = s3.get_object(Bucket=BUCKET, Key="small/" + p)
        assert o["Body"].read() == data
        st = os.stat(src / p)
        assert float(o["Metadata"]["mtime"]) == pytest.approx(st.st_mtime, abs=0.002)
        assert int(o["Metadata"]["mode"]) & 0o7777 == st.st_mode & 0o7777
    proxy.reset_counters()
    r = subprocess.run(["rsync", "-a", "--stats", str(src) + "/", m.path("export") + "/"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Number of regular files transferred: 0" in r.stdout, r.stdout
    assert proxy.count("PutObject") == proxy.count("CopyObject") == 0


def test_metadata_change_without_rename_is_stored(stack, proxy, xmount, tmp_path):
    """chmod/touch of a file just stored is kept pending for a rename, then stored on its own:
    by fsync at once, and by the mount within a few seconds otherwise."""
    rgw, _ = stack
    m = xmount("meta")
    p = m.path("export", "f.bin")
    with open(p, "wb") as f:
        f.write(b"abc")
    os.chmod(p, 0o600)
    os.utime(p, (1600000000, 1600000000.5))
    assert oct(os.stat(p).st_mode & 0o777) == oct(0o600)      # seen at once
    assert proxy.wait_for("CopyObject", 1, timeout=30)          # stored when due
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        h = rgw.s3().head_object(Bucket=BUCKET, Key="meta/f.bin")
        if h["Metadata"].get("mode") == str(0o100600):
            break
        time.sleep(0.2)
    assert h["Metadata"]["mode"] == str(0o100600)
    assert float(h["Metadata"]["mtime"]) == 1600000000.5
    # fsync stores a pending change before it returns
    os.chmod(p, 0o640)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    h = rgw.s3().head_object(Bucket=BUCKET, Key="meta/f.bin")
    assert h["Metadata"]["mode"] == str(0o100640)
    assert rgw.s3().get_object(Bucket=BUCKET, Key="meta/f.bin")["Body"].read() == b"abc"


def test_cache_ttl_zero_asks_s3_every_time(stack, proxy, xmount, tmp_path):
    """-o export_cache_ttl=0: every lookup asks S3 and a chmod is stored before it returns."""
    rgw, _ = stack
    m = xmount("nottl", export_cache_ttl=0)
    p = m.path("export", "g.bin")
    with open(p, "wb") as f:
        f.write(b"xyz")
    proxy.reset_counters()
    os.chmod(p, 0o600)
    assert proxy.count("CopyObject") == 1
    h = rgw.s3().head_object(Bucket=BUCKET, Key="nottl/g.bin")
    assert h["Metadata"]["mode"] == str(0o100600)
    proxy.reset_counters()
    for _ in range(3):
        assert not os.path.exists(m.path("export", "missing.bin"))
    assert proxy.count("HeadObject") >= 3 and proxy.count("ListObjectsV2") >= 3


def test_failed_metadata_store_is_retried_and_fsync_reports_it(stack, proxy, xmount):
    """A pending mode change whose CopyObject fails: fsync returns the error, the mount logs it
    and retries with backoff; once S3 answers again the mode is stored."""
    rgw, _ = stack
    m = xmount("metafail", max_retry_time=1)
    m.expect_log(r"storing the mode/mtime of metafail/h\.bin failed")
    m.expect_log(r"http: PUT .*/exports/metafail/h\.bin: giving up")
    m.expect_log(r"s3: CopyObject s3://exports/metafail/h\.bin failed")
    p = m.path("export", "h.bin")
    with open(p, "wb") as f:
        f.write(b"data")
    rule = proxy.fail(kind="CopyObject", times=None)
    os.chmod(p, 0o640)                      # kept pending: succeeds without a request
    fd = os.open(p, os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            os.fsync(fd)                    # the store fails: fsync says so
    finally:
        os.close(fd)
    assert proxy.faults["CopyObject"] >= 1
    assert "storing the mode/mtime of metafail/h.bin failed" in m.log()
    proxy.remove(rule)
    deadline = time.monotonic() + 60         # retried by the mount (backoff 1 s, 2 s, ...)
    while time.monotonic() < deadline:
        h = rgw.s3().head_object(Bucket=BUCKET, Key="metafail/h.bin")
        if h["Metadata"].get("mode") == str(0o100640):
            break
        time.sleep(0.3)
    assert h["Metadata"]["mode"] == str(0o100640)
