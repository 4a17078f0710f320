"""export/: an S3-backed folder (Ceph RGW) where cp, mv and rsync store files durably.

The AWS CLI and boto3 are the independent readers. kvs-local runs with the gateway's keys,
since a mount has one credentials chain."""
import hashlib
import os
import subprocess
import threading
import time

import pytest

from kvsfs_testing import fragment_files, md5


def aws_get(rgw, key, dest):
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3", "cp", f"s3://exports/{key}",
                        str(dest)], env=rgw.aws_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return dest


def assert_absent_or_complete(rgw, key, src, tmp_path):
    """After a failed close: no partial object. The staged data is kept and retried (at release),
    so the object may appear later, but only whole. dd closes a duplicate of its descriptor
    before writing, which legitimately stores the then-empty file: empty is a state the file had
    at a successful close, not partial data."""
    try:
        rgw.s3().head_object(Bucket="exports", Key=key)
    except Exception:
        return
    got = md5(aws_get(rgw, key, tmp_path / "check.bin"))
    assert got in (md5(src), hashlib.md5(b"").hexdigest())


def uploads_left(rgw):
    r = rgw.s3().list_multipart_uploads(Bucket="exports")
    return r.get("Uploads", [])


@pytest.mark.parametrize("size", [0, 1, 5 * 2**20 - 1, 5 * 2**20, 5 * 2**20 + 1, 64 * 2**20, 2**30])
def test_cp_stores_the_exact_bytes(stack, xmount, tmp_path, size):
    rgw, _, _ = stack
    m = xmount(prefix=f"sizes{size}")
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    subprocess.run(["cp", str(src), m.path("export", "f.bin")], check=True, timeout=900)
    assert os.stat(m.path("export", "f.bin")).st_size == size
    back = aws_get(rgw, f"sizes{size}/f.bin", tmp_path / "back.bin")
    assert md5(back) == md5(src)
    head = rgw.s3().head_object(Bucket="exports", Key=f"sizes{size}/f.bin")
    if size >= 64 * 2**20:
        assert "-" in head["ETag"]  # multipart was used
    assert md5(m.path("export", "f.bin")) == md5(src)  # read back through the mount


def test_rsync_of_fragments_and_clips_twice_copies_nothing_new(stack, xmount):
    _, _, start = stack
    m = xmount(prefix="rsync")
    clip = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start)) + "-" + \
        time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start + 7)) + ".mp4"
    os.stat(m.path("cam", "clips", clip))  # make a clip so clips/ has one
    for src in ("fragments", "clips"):
        args = ["rsync", "-a", "--stats", m.path("cam", src) + "/", m.path("export", src) + "/"]
        r1 = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert r1.returncode == 0, r1.stderr
        r2 = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert "Number of regular files transferred: 0" in r2.stdout, r2.stdout
    for f in fragment_files(m.path("cam", "fragments")):
        rel = os.path.relpath(f, m.path("cam", "fragments"))
        d = os.path.join(m.path("export", "fragments"), rel)
        assert os.stat(d).st_mtime_ns // 1_000_000 == os.stat(f).st_mtime_ns // 1_000_000
        assert os.stat(d).st_mode & 0o777 == os.stat(f).st_mode & 0o777
        assert md5(d) == md5(f)


def test_mv_rm_mkdir_rmdir_touch_chmod(stack, xmount, tmp_path):
    rgw, _, _ = stack
    m = xmount(prefix="ops")
    e = m.path("export")
    os.mkdir(os.path.join(e, "d"))
    assert os.path.isdir(os.path.join(e, "d")) and os.listdir(os.path.join(e, "d")) == []
    with open(os.path.join(e, "d", "a.txt"), "w") as f:
        f.write("hello")
    with pytest.raises(OSError) as err:
        os.rmdir(os.path.join(e, "d"))
    assert err.value.errno == 39  # ENOTEMPTY
    subprocess.run(["mv", os.path.join(e, "d", "a.txt"), os.path.join(e, "b.txt")], check=True)
    assert open(os.path.join(e, "b.txt")).read() == "hello"
    assert not os.path.exists(os.path.join(e, "d", "a.txt"))
    os.rmdir(os.path.join(e, "d"))
    subprocess.run(["touch", "-d", "2020-01-02 03:04:05.5", os.path.join(e, "b.txt")], check=True)
    os.chmod(os.path.join(e, "b.txt"), 0o600)
    st = os.stat(os.path.join(e, "b.txt"))
    assert st.st_mode & 0o777 == 0o600
    assert abs(st.st_mtime - 1577934245.5) < 0.01
    meta = rgw.s3().head_object(Bucket="exports", Key="ops/b.txt")["Metadata"]
    assert abs(float(meta["mtime"]) - 1577934245.5) < 0.01
    os.unlink(os.path.join(e, "b.txt"))
    assert os.listdir(e) == []


def test_objects_put_by_other_tools_appear(stack, xmount, tmp_path):
    rgw, _, _ = stack
    src = tmp_path / "other.bin"
    src.write_bytes(os.urandom(12345))
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3", "cp", str(src),
                        "s3://exports/others/dir/x.bin"], env=rgw.aws_env(), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    m = xmount(prefix="others")
    p = m.path("export", "dir", "x.bin")
    st = os.stat(p)
    head = rgw.s3().head_object(Bucket="exports", Key="others/dir/x.bin")
    assert st.st_size == 12345
    assert abs(st.st_mtime - head["LastModified"].timestamp()) < 2
    assert open(p, "rb").read() == src.read_bytes()


def test_gateway_down_during_upload_fails_close_and_loses_nothing(stack, xmount, tmp_path):
    rgw, _, _ = stack
    m = xmount(prefix="fail", max_retry_time=5)
    m.expect_log(r".")  # the failed upload is logged
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(40 * 2**20))
    dst = m.path("export", "f.bin")
    rgw.stop_gateway()
    try:
        r = subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync"], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode != 0  # close/fsync reported the failure
    finally:
        rgw.start_gateway()
    assert_absent_or_complete(rgw, "fail/f.bin", src, tmp_path)
    assert uploads_left(rgw) == []
    # when the server is back, copying again succeeds
    subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync"], check=True, capture_output=True,
                   timeout=600)
    assert md5(aws_get(rgw, "fail/f.bin", tmp_path / "back.bin")) == md5(src)


def test_eight_parallel_writers_of_64_mib(stack, xmount, tmp_path):
    rgw, _, _ = stack
    m = xmount(prefix="par")
    srcs = []
    for i in range(8):
        p = tmp_path / f"s{i}.bin"
        p.write_bytes(os.urandom(64 * 2**20))
        srcs.append(p)
    errs = []

    def cp(i):
        r = subprocess.run(["cp", str(srcs[i]), m.path("export", f"p{i}.bin")], capture_output=True,
                           text=True, timeout=900)
        if r.returncode:
            errs.append(r.stderr)

    ts = [threading.Thread(target=cp, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    for i in range(8):
        assert md5(aws_get(rgw, f"par/p{i}.bin", tmp_path / "b.bin")) == md5(srcs[i])
    assert uploads_left(rgw) == []


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_proxy_faults_fail_close_and_leave_nothing_behind(stack, xmount, tmp_path, fault):
    from s3_local.proxy import FaultProxy
    rgw, _, _ = stack
    proxy = FaultProxy(rgw.endpoint)
    try:
        m = xmount(prefix=f"proxy{fault}", endpoint=proxy.endpoint, max_retry_time=5)
        m.expect_log(r".")
        src = tmp_path / "src.bin"
        src.write_bytes(os.urandom(24 * 2**20))
        dst = m.path("export", "f.bin")
        if fault == "503":
            rule = proxy.fail(kind="UploadPart", times=None)
        else:
            rule = proxy.reset_after(3 * 2**20, kind="UploadPart", times=None)
        r = subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync"], capture_output=True,
                           text=True, timeout=900)
        assert r.returncode != 0, "close/fsync must report the failed upload"
        time.sleep(1)  # the release after close may retry from the kept staging data
        proxy.remove(rule)
        # that retry may still be running: wait until no upload of the key is in progress
        deadline = time.time() + 60
        while time.time() < deadline and [u for u in uploads_left(rgw)
                                          if u["Key"].startswith(f"proxy{fault}/")]:
            time.sleep(0.5)
        assert [u for u in uploads_left(rgw) if u["Key"].startswith(f"proxy{fault}/")] == []
        assert_absent_or_complete(rgw, f"proxy{fault}/f.bin", src, tmp_path)
        subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync"], check=True,
                       capture_output=True, timeout=900)
        assert md5(aws_get(rgw, f"proxy{fault}/f.bin", tmp_path / "back.bin")) == md5(src)
        m.stop()  # unmount while the proxy still forwards (the last aborts go through it)
        assert [u for u in uploads_left(rgw) if u["Key"].startswith(f"proxy{fault}/")] == []
    finally:
        proxy.close()


def test_missing_bucket_or_wrong_key_fails_the_mount(stack, build_dir, tmp_path):
    rgw, srv, _ = stack
    mnt = tmp_path / "m"
    mnt.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=rgw.access_key, AWS_SECRET_ACCESS_KEY=rgw.secret_key,
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    opts = f"endpoint={srv.url},s3_endpoint={rgw.endpoint},s3_path_style"
    r = subprocess.run([str(build_dir / "src" / "kvsfs"), "-o", opts + ",export=s3://no-such-bucket/x",
                        str(mnt)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    last = [l for l in r.stderr.splitlines() if l.strip()][-1]
    assert last.startswith("kvsfs: ") and "no-such-bucket" in last and "does not exist" in last
    assert not os.path.ismount(mnt)
    r = subprocess.run([str(build_dir / "src" / "kvsfs"), "-o", opts + ",export=s3://BAD_BUCKET",
                        str(mnt)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "bucket name" in r.stderr


def test_staging_space_running_out_is_enospc(stack, xmount, tmp_path):
    rgw, _, _ = stack
    m = xmount(prefix="full", cache_size="2M")
    m.expect_log(r"staging|space|ENOSPC|No space")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(6 * 2**20))
    r = subprocess.run(["cp", str(src), m.path("export", "big.bin")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0 and "No space left on device" in r.stderr, r.stderr
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(100_000))
    subprocess.run(["cp", str(small), m.path("export", "small.bin")], check=True, timeout=300)
    assert md5(aws_get(rgw, "full/small.bin", tmp_path / "back.bin")) == md5(small)


def test_leftover_staging_after_a_crash_is_reported_not_uploaded(stack, xmount, tmp_path):
    rgw, _, _ = stack
    m = xmount(prefix="crash", max_retry_time=5)
    m.expect_log(r"staging|leftover|left over|crash")
    path = m.path("export", "half.bin")
    f = open(path, "wb")
    f.write(os.urandom(300_000))
    f.flush()
    m.kill_hard()  # the daemon dies with the file staged, not stored
    try:
        f.close()
    except OSError:
        pass
    m.start()  # the same cache folder: the leftover is found
    time.sleep(0.5)
    report = [l for l in m.log().splitlines() if "kvsfs[warning] export:" in l and "half.bin" in l]
    assert report and "NOT uploaded" in report[-1]
    with pytest.raises(Exception):
        rgw.s3().head_object(Bucket="exports", Key="crash/half.bin")  # never uploaded as complete


def test_rsync_into_the_export_root_itself(stack, xmount, tmp_path):
    rgw, _, _ = stack
    m = xmount(prefix="rootsync")
    src = tmp_path / "tree"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.bin").write_bytes(os.urandom(1000))
    (src / "b.bin").write_bytes(os.urandom(2000))
    for _ in range(2):
        r = subprocess.run(["rsync", "-a", "--stats", f"{src}/", m.path("export") + "/"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    assert "Number of regular files transferred: 0" in r.stdout
    assert md5(aws_get(rgw, "rootsync/d/a.bin", tmp_path / "x.bin")) == md5(src / "d" / "a.bin")
