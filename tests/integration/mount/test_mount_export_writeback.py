"""export/ with -o export_writeback (docs/EXPORT.md "Write-back mode"): close() returns once the
file is durably staged (data fsync'd, journal entry), uploads run in the background.

A FaultProxy in front of Ceph RGW counts (and fails, holds) kvsfs's S3 requests per key; boto3
and the AWS CLI read back what is stored. Counts only, never timings. The kernel sends syncfs
(`sync -f`) only to virtiofs servers, so the tests sync with fsync(2) of a folder of the mount,
which is how the write-back mode spells `sync -f` (docs/EXPORT.md)."""
import collections
import glob
import hashlib
import os
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest

pytest.importorskip("s3_local.testing")
from test_mount_export_recovery import BUCKET, aws_uploads, proxy, stack, xmount  # noqa: E402,F401


def sync_dir(path):
    """fsync(2) of a folder of the mount: waits for every pending upload; raises its error."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def blob(i, size=20000, seed=b"w"):
    d = hashlib.sha256(seed + str(i).encode()).digest()
    return (d * (size // 32 + 1))[:size]


def stores(proxy, prefix):
    """{key: number of PutObject/CopyObject/CompleteMultipartUpload answered 200} under prefix."""
    c = collections.Counter()
    for s in list(proxy.log):
        if s.kind in ("PutObject", "CopyObject", "CompleteMultipartUpload") and s.status == 200:
            path = urllib.parse.unquote(s.target.split("?", 1)[0])
            key = path.split("/", 2)[2] if path.count("/") >= 2 else ""
            if key.startswith(prefix) and not key.endswith("/"):
                c[key] += 1
    return c


def stored_keys(s3, prefix):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])
                    if not o["Key"].endswith("/")})
    return out


def journals(m):
    return sorted(glob.glob(os.path.join(m.cache, "staging", "*.wb")))


def test_pending_files_listed_then_stored_once_under_final_names(stack, proxy, xmount, tmp_path):
    """rsync -a: close returns while the uploads are held at the proxy; listings and stat show
    the pending files with their final names, sizes, modes and mtimes; once released each file
    is stored exactly once, under its final name (no temp key, no copy, no delete), and a second
    rsync copies nothing."""
    rgw, _ = stack
    s3 = rgw.s3()
    src = tmp_path / "src"
    src.mkdir()
    n = 40
    for i in range(n):
        p = src / f"frag-{i:03d}.mkv"
        p.write_bytes(blob(i, 30000 + i * 100))
        os.chmod(p, 0o640 if i % 2 else 0o644)
        os.utime(p, (1700000000 + i, 1700000000 + i + 0.5))
    m = xmount("wbls", export_writeback=True)
    os.listdir(m.path("export"))
    hold = proxy.hold(kind="PutObject", path="frag-")
    try:
        r = subprocess.run(["rsync", "-a", str(src) + "/", m.path("export") + "/"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert stored_keys(s3, "wbls/") == {}                 # nothing stored yet
        names = sorted(os.listdir(m.path("export")))
        assert names == sorted(f"frag-{i:03d}.mkv" for i in range(n))
        for i in range(n):
            st = os.stat(m.path("export", f"frag-{i:03d}.mkv"))
            ref = os.stat(src / f"frag-{i:03d}.mkv")
            assert (st.st_size, st.st_mode & 0o7777) == (ref.st_size, ref.st_mode & 0o7777)
            assert st.st_mtime == pytest.approx(ref.st_mtime, abs=0.002)
    finally:
        proxy.release(hold)
    sync_dir(m.path("export"))
    counts = stores(proxy, "wbls/")
    assert counts == {f"wbls/frag-{i:03d}.mkv": 1 for i in range(n)}, counts
    kinds = collections.Counter(s.kind for s in proxy.log)
    assert kinds["CopyObject"] == 0 and kinds["DeleteObject"] == 0, kinds
    for i in range(n):
        o = s3.get_object(Bucket=BUCKET, Key=f"wbls/frag-{i:03d}.mkv")
        assert o["Body"].read() == blob(i, 30000 + i * 100)
        assert float(o["Metadata"]["mtime"]) == pytest.approx(1700000000 + i + 0.5, abs=0.002)
        assert int(o["Metadata"]["mode"]) & 0o7777 == (0o640 if i % 2 else 0o644)
    assert journals(m) == []
    proxy.reset_counters()
    r = subprocess.run(["rsync", "-a", "--stats", str(src) + "/", m.path("export") + "/"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Number of regular files transferred: 0" in r.stdout, r.stdout
    assert proxy.count("PutObject") == proxy.count("CopyObject") == 0
    # after that folder fsync (a finished sync pass) new files still wait for their rename:
    # each stored once under its final name
    r = subprocess.run(["rsync", "-a", str(src) + "/", m.path("export", "again") + "/"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    sync_dir(m.path("export"))
    # (stores counts PutObject and CopyObject of every file key, temp names included; rsync's
    # utimens of the folder itself may update its marker with a CopyObject)
    counts = stores(proxy, "wbls/again/")
    assert counts == {f"wbls/again/frag-{i:03d}.mkv": 1 for i in range(n)}, counts
    assert proxy.count("DeleteObject") == 0


def test_kill_with_a_backlog_then_remount_stores_each_closed_file_once(stack, proxy, xmount,
                                                                      tmp_path):
    rgw, _ = stack
    s3 = rgw.s3()
    m = xmount("wbkill", export_writeback=True, max_retry_time=2)
    m.expect_log(r"storing wbkill/f-1.\.bin failed")
    m.expect_log(r"s3: PutObject s3://exports/wbkill/f-1.\.bin failed")
    m.expect_log(r"http: PUT \S+/exports/wbkill/f-1.\.bin: giving up")
    # the uploads of f-10..f-19 fail (503) in the first run: they make the backlog
    fail = proxy.fail(kind="PutObject", path="/wbkill/f-1", times=None)
    files = {f"f-{i:02d}.bin": blob(i, 10000 + 3000 * i) for i in range(20)}
    for name, data in files.items():
        write(m.path("export", name), data)
    # changes of pending files apply to the journal: one rename, one chmod, one utimens
    os.rename(m.path("export", "f-10.bin"), m.path("export", "f-1x.bin"))
    files["f-1x.bin"] = files.pop("f-10.bin")
    os.chmod(m.path("export", "f-11.bin"), 0o600)
    os.utime(m.path("export", "f-12.bin"), (1600000000, 1600000000.25))
    # a rename whose (unflushed) newer entry the crash damages: the close-time entry holds
    os.rename(m.path("export", "f-13.bin"), m.path("export", "f-1y.bin"))
    # a file still open at the crash: never uploaded, reported at the next mount
    held = open(m.path("export", "open.bin"), "wb")
    held.write(b"partial" * 1000)
    held.flush()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(stores(proxy, "wbkill/")) < 10:
        time.sleep(0.2)  # wait (by count) until f-00..f-09 are stored
    assert len(stores(proxy, "wbkill/")) == 10, m.log()
    assert len(journals(m)) == 10                      # the backlog: f-1x, f-11..f-19
    m.kill_hard()
    try:
        held.close()
    except OSError:
        pass
    proxy.remove(fail)
    # the changes after close are the newer entries, attributes of the close-time entries
    staging = os.path.join(m.cache, "staging")
    newer = {}
    for p in journals(m):
        try:
            text = os.getxattr(p, "user.kvsfs.newer").decode()
        except OSError:
            continue
        newer[text.rsplit("path ", 1)[1].rsplit("/", 1)[-1]] = (p, text)
    assert {"f-1x.bin", "f-11.bin", "f-12.bin", "f-1y.bin"} <= set(newer), newer
    # one damaged (as a file system without atomic attributes could leave it): the
    # close-time entry holds, f-13.bin keeps its name
    os.setxattr(newer["f-1y.bin"][0], "user.kvsfs.newer", newer["f-1y.bin"][1][:20].encode())
    # a newer entry in a file (file systems without user xattrs) without its close-time
    # entry is never resumed: deleted
    orphan = os.path.join(staging, "kvsfs-orphan.stage.wbn")
    with open(orphan, "w") as f:
        f.write(newer["f-11.bin"][1].replace("f-11.bin", "f-orphan.bin"))
    m.expect_log(r"staging file\(s\) of an earlier run")
    m.start()
    sync_dir(m.path("export"))
    assert "resuming 10 journaled upload(s)" in m.log()
    assert not os.path.exists(orphan)
    assert glob.glob(os.path.join(staging, "*.wbn")) == []
    counts = stores(proxy, "wbkill/")
    assert counts == {"wbkill/" + k: 1 for k in files}, counts    # each exactly once
    assert set(stored_keys(s3, "wbkill/")) == {"wbkill/" + k for k in files}
    for name, data in files.items():
        assert s3.get_object(Bucket=BUCKET, Key="wbkill/" + name)["Body"].read() == data
    meta = s3.head_object(Bucket=BUCKET, Key="wbkill/f-11.bin")["Metadata"]
    assert int(meta["mode"]) & 0o7777 == 0o600
    meta = s3.head_object(Bucket=BUCKET, Key="wbkill/f-12.bin")["Metadata"]
    assert float(meta["mtime"]) == pytest.approx(1600000000.25, abs=0.002)
    assert aws_uploads(rgw, "wbkill/") == []
    assert journals(m) == []
    leftover = [ln for ln in m.log().splitlines() if "staging file(s) of an earlier run" in ln]
    assert len(leftover) == 1 and "open.bin" in leftover[0], m.log()


def refused_backlog(xmount, proxy, prefix, n, max_retry_time):
    """A write-back mount whose uploads under prefix are refused (503, logged: expected), with
    n files written and closed there. Returns (mount, refusal rule, {name: data})."""
    m = xmount(prefix, export_writeback=True, max_retry_time=max_retry_time)
    m.expect_log(rf"storing {prefix}/.* failed")
    m.expect_log(rf"s3: \w+ s3://exports/{prefix}/.* failed")
    m.expect_log(rf"http: PUT \S+/exports/{prefix}/\S+: giving up")
    refuse = proxy.fail(kind="PutObject", path=f"/{prefix}/", times=None)
    files = {f"{prefix}-{i:02d}.bin": blob(i, 4000 + 999 * i, prefix.encode()) for i in range(n)}
    for name, data in files.items():
        write(m.path("export", name), data)
    return m, refuse, files


def test_gateway_down_30s_during_a_backlog(stack, proxy, xmount):
    rgw, _ = stack
    s3 = rgw.s3()
    # uploads refused from the start, so the backlog is the whole set
    m, refuse_puts, files = refused_backlog(xmount, proxy, "wbdown", 16, 2)
    # then the gateway refuses everything for 30 s
    refuse_all = proxy.fail(times=None)
    time.sleep(30)
    proxy.remove(refuse_all)
    proxy.remove(refuse_puts)
    refused = sum(1 for s in proxy.log if s.kind == "PutObject" and s.status == 503)
    assert refused >= len(files)                          # every upload failed at least once
    failures = [ln for ln in m.log().splitlines() if "storing wbdown/" in ln]
    assert len(failures) >= len(files), m.log()           # and each failure was logged
    sync_dir(m.path("export"))
    assert stores(proxy, "wbdown/") == {"wbdown/" + k: 1 for k in files}
    for name, data in files.items():
        assert s3.get_object(Bucket=BUCKET, Key="wbdown/" + name)["Body"].read() == data
    assert journals(m) == []


def test_fsync_and_folder_fsync_return_the_upload_error(stack, proxy, xmount):
    rgw, _ = stack
    s3 = rgw.s3()
    m = xmount("wbfs", export_writeback=True, max_retry_time=1)
    m.expect_log(r"storing wbfs/bad\.bin failed")
    m.expect_log(r"s3: PutObject s3://exports/wbfs/bad\.bin failed: HTTP 403")
    deny = proxy.fail(kind="PutObject", path="/wbfs/bad", status=403, code="AccessDenied",
                      message="denied by the test", times=None)
    write(m.path("export", "good.bin"), b"good" * 1000)
    fd = os.open(m.path("export", "bad.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"bad" * 1000)
    with pytest.raises(PermissionError):
        os.fsync(fd)                                   # that file's upload: EACCES
    os.close(fd)                                       # staged: close succeeds
    with pytest.raises(PermissionError):
        sync_dir(m.path("export"))                     # every pending upload: EACCES
    assert s3.get_object(Bucket=BUCKET, Key="wbfs/good.bin")["Body"].read() == b"good" * 1000
    assert os.stat(m.path("export", "bad.bin")).st_size == 3000   # pending, shown
    proxy.remove(deny)
    sync_dir(m.path("export"))
    assert s3.get_object(Bucket=BUCKET, Key="wbfs/bad.bin")["Body"].read() == b"bad" * 1000
    assert stores(proxy, "wbfs/") == {"wbfs/good.bin": 1, "wbfs/bad.bin": 1}


def test_staging_full_makes_writers_wait_for_uploads(stack, proxy, xmount):
    """Backpressure (docs/EXPORT.md): a write that finds the staging space full waits for the
    pending uploads to free it (one info line), then goes on; nothing fails."""
    rgw, _ = stack
    s3 = rgw.s3()
    m = xmount("wbfull", export_writeback=True, cache_size="2M")
    hold = proxy.hold(kind="PutObject", path="/wbfull/")
    files = {f"s-{i:02d}.bin": blob(i, 256 * 1024, b"full") for i in range(16)}   # 4 MiB
    errors = []

    def writer():
        try:
            for name, data in files.items():
                write(m.path("export", name), data)
        except OSError as e:
            errors.append(e)
    t = threading.Thread(target=writer)
    t.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "staging space full" not in m.log():
            time.sleep(0.1)
        assert "staging space full" in m.log(), m.log()
        assert t.is_alive()                            # the writer waits for space
    finally:
        proxy.release(hold)
    t.join(timeout=300)
    assert not t.is_alive() and errors == []
    sync_dir(m.path("export"))
    assert stores(proxy, "wbfull/") == {"wbfull/" + k: 1 for k in files}
    for name, data in files.items():
        assert s3.get_object(Bucket=BUCKET, Key="wbfull/" + name)["Body"].read() == data


def test_sigterm_drains_the_pending_uploads(stack, proxy, xmount):
    rgw, _ = stack
    s3 = rgw.s3()
    m = xmount("wbterm", export_writeback=True)
    files = {f"t-{i:02d}.bin": blob(i, 7000 + 501 * i, b"term") for i in range(20)}
    for name, data in files.items():
        write(m.path("export", name), data)
    m.signal(signal.SIGTERM)                      # within the hold: nothing uploaded yet
    assert m.wait(timeout=120) in (0, None)
    assert stores(proxy, "wbterm/") == {"wbterm/" + k: 1 for k in files}
    for name, data in files.items():
        assert s3.get_object(Bucket=BUCKET, Key="wbterm/" + name)["Body"].read() == data
    assert journals(m) == []


def test_unmount_with_the_gateway_down_keeps_the_rest_journaled(stack, proxy, xmount):
    rgw, _ = stack
    s3 = rgw.s3()
    m, refuse, files = refused_backlog(xmount, proxy, "wbkeep", 6, 1)
    m.expect_log(r"stay journaled in")
    m.stop()                                      # drains for max_retry_time, then gives up
    kept = [ln for ln in m.log().splitlines() if "stay journaled in" in ln]
    assert len(kept) == 1 and "6 file(s)" in kept[0], m.log()
    assert len(journals(m)) == 6
    proxy.remove(refuse)
    m.start()
    sync_dir(m.path("export"))
    assert stores(proxy, "wbkeep/") == {"wbkeep/" + k: 1 for k in files}
    for name, data in files.items():
        assert s3.get_object(Bucket=BUCKET, Key="wbkeep/" + name)["Body"].read() == data
    assert journals(m) == []
