"""kvsfs run as users run it: started by mount(8) from an fstab line, in the background, doing
real work (a multipart copy into export/, the open hour of a live stream, fragment reads), then
unmounted: the daemon must exit. Before the start-up order was fixed (fork first, every thread
after), a background daemon never stored a file larger than one part and never exited."""
import datetime as dt
import os
import signal
import subprocess
import threading
import time

import pytest

from kvs_local.testing import gmffl
from kvsfs_procs import daemon_pids, reap
from kvsfs_testing import daemon_env, md5, xattr

UTC = dt.timezone.utc


def hour_dir(mnt, stream, ts):
    t = dt.datetime.fromtimestamp(ts, UTC)
    return os.path.join(mnt, stream, "fragments", t.strftime("%Y-%m-%d"), t.strftime("%H"))


def wait_gone(pid, timeout=30):
    """Exit status of the daemon (pytest is its subreaper), or a failure if it outlives this."""
    try:
        return reap(pid, timeout)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"kvsfs (pid {pid}) did not exit within {timeout} s of its unmount")


@pytest.fixture
def fstab_mount(stack, build_dir, tmp_path):
    """mount(8) with an fstab line; yields (mnt, log path, daemon pid). mount.fuse3 runs the
    program with a fixed PATH, so the build tree's binary is named in the line's equivalent
    form `PROGRAM#kvsfs MNT fuse OPTIONS` (an installed kvsfs is `kvsfs MNT fuse.kvsfs ...`)."""
    rgw, srv, _ = stack
    if os.geteuid() != 0:
        pytest.skip("mount(8) needs root")
    mnt, log = tmp_path / "mnt", tmp_path / "kvsfs.log"
    mnt.mkdir()
    opts = ",".join([f"endpoint={srv.url}", f"cache_dir={tmp_path / 'cache'}", f"log_file={log}",
                     "export=s3://exports/fstab", f"s3_endpoint={rgw.endpoint}", "s3_path_style",
                     "meta_ttl=1", "_netdev", "noauto", "nofail"])
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{build_dir / 'src' / 'kvsfs'}#kvsfs {mnt} fuse {opts} 0 0\n")
    env = daemon_env(srv)
    r = subprocess.run(["mount", "--fstab", str(fstab), str(mnt)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr + (log.read_text() if log.exists() else "")
    pids = daemon_pids(str(mnt))
    try:
        assert os.path.ismount(mnt)
        assert len(pids) == 1, pids
        with open("/proc/mounts") as f:
            line = [l for l in f if f" {mnt} " in l][0]
        assert line.split()[:3] == ["kvsfs", str(mnt), "fuse.kvsfs"], line
        yield str(mnt), log, pids[0]
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["umount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        text = log.read_text(errors="replace") if log.exists() else ""
        assert "AddressSanitizer" not in text and "runtime error:" not in text, text


def test_fstab_mount_does_real_work_and_exits_at_umount(stack, fstab_mount, tmp_path):
    rgw, srv, start = stack
    mnt, log, pid = fstab_mount
    # a live camera: its open hour is listed through the mount
    live = srv.seed_live("live-cam")
    try:
        # 1. a 40 MB copy into export/: five parts of 8 MiB, stored before cp returns
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(40 * 2**20))
        subprocess.run(["cp", str(src), os.path.join(mnt, "export", "big.bin")], check=True,
                       timeout=300)
        back = tmp_path / "back.bin"
        r = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3", "cp",
                            "s3://exports/fstab/big.bin", str(back)], env=rgw.aws_env(),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert md5(back) == md5(src)
        head = rgw.s3().head_object(Bucket="exports", Key="fstab/big.bin")
        assert "-" in head["ETag"]  # it went up as a multipart upload
        # 2. the live hour
        deadline, names = time.time() + 30, []
        while time.time() < deadline and not names:
            d = hour_dir(mnt, "live-cam", time.time())
            names = os.listdir(d) if os.path.isdir(d) else []
            time.sleep(0.5)
        assert names, "no fragment of the live camera appeared in its open hour"
        # 3. fragment reads: the bytes are GetMediaForFragmentList's (boto3 judges)
        hd = hour_dir(mnt, "cam", start)
        frags = sorted(os.listdir(hd))
        assert len(frags) == 6
        for name in frags:
            p = os.path.join(hd, name)
            with open(p, "rb") as f:
                data = f.read()
            assert len(data) == os.stat(p).st_size
        p = os.path.join(hd, frags[0])
        assert open(p, "rb").read() == gmffl(srv, "cam", [xattr(p, "user.kvs.fragment_number")])
    finally:
        live.stop()
    # 4. umount ends the daemon, with status 0
    r = subprocess.run(["umount", mnt], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert wait_gone(pid) in (0, None)
    assert not daemon_pids(mnt)
    assert "unmounting" in log.read_text()


def test_sigterm_during_an_upload_reports_it_and_exits(stack, mount, tmp_path):
    """SIGTERM while cp writes a large file: the session ends, the daemon reports the file as
    not stored (EXPORT.md), leaves no multipart upload in the bucket, and exits 0."""
    rgw, srv, _ = stack
    m = mount(srv, export="s3://exports/term", s3_endpoint=rgw.endpoint, s3_path_style=True)
    m.expect_log(r"was not stored in S3")
    dst = m.path("export", "big.bin")
    written = threading.Event()
    errors = []

    def writer():
        try:
            with open(dst, "wb") as f:
                for i in range(64):
                    f.write(os.urandom(2**20))
                    if i == 20:
                        f.flush()
                        written.set()
                        time.sleep(1.0)  # the daemon gets its SIGTERM now
        except OSError as e:
            errors.append(e)
        finally:
            written.set()

    t = threading.Thread(target=writer)
    t.start()
    assert written.wait(60)
    m.signal(signal.SIGTERM)
    t.join(120)
    assert not t.is_alive()
    assert m.wait(timeout=60) == 0
    assert errors, "the writer should have seen the mount go away"
    assert "was not stored in S3" in m.log()
    ups = rgw.s3().list_multipart_uploads(Bucket="exports", Prefix="term/").get("Uploads", [])
    assert not ups, ups
