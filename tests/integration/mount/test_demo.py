"""The README's quick start (scripts/demo) mounts a live demo and cleans up on Ctrl-C."""
import os
import signal
import subprocess
import time


def in_mount_table(path):
    with open("/proc/self/mounts") as f:
        return any(l.split()[1] == path for l in f)


def test_quick_start_mounts_a_live_camera_and_cleans_up(repo_dir, tmp_path):
    d = tmp_path / "demo"
    p = subprocess.Popen([str(repo_dir / "scripts" / "demo"), "--dir", str(d), "--hours", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    out = []
    mnt = str(d / "mnt")
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(out)
        assert "kvsfs is mounted" in text, text
        assert os.path.ismount(mnt)
        assert sorted(os.listdir(mnt)) == ["demo-cam", "export"]
        live = open(os.path.join(mnt, "demo-cam", "live.m3u8")).read()
        assert live.startswith("#EXTM3U")
        days = os.listdir(os.path.join(mnt, "demo-cam", "fragments"))
        assert days
    finally:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        left_mounted = in_mount_table(mnt)
        if left_mounted:
            subprocess.run(["fusermount3", "-uz", mnt])
    # (a dead mount fails stat, so os.path.ismount would not see it)
    assert not left_mounted
    # kvs-local and the camera are gone too
    left = subprocess.run(["pgrep", "-f", str(d)], capture_output=True, text=True).stdout.split()
    assert not left, left
