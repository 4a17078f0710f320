"""kvsfs as a command: start-up failures, daemon mode, signals, mount(8), secrets."""
import os
import shutil
import signal
import subprocess
import time

import pytest

from kvsfs_testing import Mount


_CACHE_ROOT = []


def env_for(srv, **extra):
    """Credentials for srv and a cache folder of the test's own (never the user's)."""
    import tempfile
    if not _CACHE_ROOT:
        _CACHE_ROOT.append(tempfile.mkdtemp(prefix="kvsfs-cli-cache-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(dir=_CACHE_ROOT[0])
    env.update(AWS_ACCESS_KEY_ID=srv.access_key, AWS_SECRET_ACCESS_KEY=srv.secret_key,
               AWS_REGION=srv.region, AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    env.update(extra)
    return env


def wait_mount(path, present, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.ismount(path) == present:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def mnt(tmp_path):
    d = tmp_path / "mnt"
    d.mkdir()
    yield str(d)
    if os.path.ismount(str(d)):
        if subprocess.run(["fusermount3", "-u", str(d)]).returncode != 0:
            subprocess.run(["fusermount3", "-uz", str(d)])


def one_sentence_failure(r):
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines and lines[-1].startswith("kvsfs: "), r.stderr
    return lines[-1]


def test_version_and_help(build_dir):
    kvsfs = str(build_dir / "src" / "kvsfs")
    v = subprocess.run([kvsfs, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("kvsfs ")
    h = subprocess.run([kvsfs, "--help"], capture_output=True, text=True)
    assert h.returncode == 0
    for opt in ["region=", "profile=", "endpoint=", "streams=", "stream_prefix=", "timestamps=",
                "cache_dir=", "cache_size=", "meta_ttl=", "hls_expires=", "ca_file=", "no_verify_ssl",
                "uid=", "gid=", "umask=", "allow_other", "live_public", "readahead="]:
        assert opt in h.stdout, opt
    man = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "man", "kvsfs.1")).read()
    for opt in ["region=", "profile=", "endpoint=", "streams=", "stream_prefix=", "timestamps=",
                "cache_dir=", "cache_size=", "meta_ttl=", "hls_expires=", "ca_file=", "no_verify_ssl",
                "uid=", "gid=", "umask=", "allow_other", "live_public", "readahead=", "fstab"]:
        assert opt.rstrip("=").replace("_", "\\_") in man or opt.rstrip("=") in man, opt


@pytest.mark.parametrize("options,env_extra,needle", [
    ("bogus_option", {}, "unknown option"),
    ("hls_expires=10", {}, "300"),
    ("region=Not_A_Region", {}, "region"),
    ("timestamps=local", {}, "timestamps"),
    ("cache_size=lots", {}, "size"),
])
def test_bad_options_fail_with_one_sentence(build_dir, kvs, mnt, options, env_extra, needle):
    r = subprocess.run([str(build_dir / "src" / "kvsfs"), "-o", f"endpoint={kvs.url},{options}", mnt],
                       env=env_for(kvs, **env_extra), capture_output=True, text=True, timeout=30)
    assert needle in one_sentence_failure(r)
    assert not os.path.ismount(mnt)


def test_mount_that_cannot_work_fails_at_mount_time(build_dir, kvs, mnt, tmp_path):
    kvsfs = str(build_dir / "src" / "kvsfs")
    # no credentials anywhere
    env = env_for(kvs)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    r = subprocess.run([kvsfs, "-o", f"endpoint={kvs.url}", mnt], env=env, capture_output=True,
                       text=True, timeout=30)
    assert "credentials" in one_sentence_failure(r).lower()
    # endpoint unreachable (nothing listens on port 1)
    t = time.time()
    r = subprocess.run([kvsfs, "-o", "endpoint=http://127.0.0.1:1", mnt], env=env_for(kvs),
                       capture_output=True, text=True, timeout=120)
    assert "stream" in one_sentence_failure(r).lower()
    # wrong secret: the server refuses
    r = subprocess.run([kvsfs, "-o", f"endpoint={kvs.url}", mnt],
                       env=env_for(kvs, AWS_SECRET_ACCESS_KEY="wrong"), capture_output=True,
                       text=True, timeout=60)
    assert "HTTP 403" in one_sentence_failure(r)
    # no region
    env = env_for(kvs)
    del env["AWS_REGION"]
    r = subprocess.run([kvsfs, "-o", f"endpoint={kvs.url}", mnt], env=env, capture_output=True,
                       text=True, timeout=30)
    assert "region" in one_sentence_failure(r).lower()
    assert not os.path.ismount(mnt)


def test_daemon_mode_detaches_after_mounting(build_dir, kvs, mnt):
    r = subprocess.run([str(build_dir / "src" / "kvsfs"), "-o", f"endpoint={kvs.url}", mnt],
                       env=env_for(kvs), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.ismount(mnt)  # mounted before the parent returned
    assert "fragments" not in os.listdir(mnt)
    subprocess.run(["fusermount3", "-u", mnt], check=True)
    assert wait_mount(mnt, False)


def test_sigterm_and_sigint_unmount_cleanly(build_dir, kvs, tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        m = Mount(str(build_dir / "src" / "kvsfs"), kvs, tmp_path, {}, name=f"sig{int(sig)}")
        m.start()
        try:
            os.listdir(m.dir)
            m.signal(sig)
            assert m.wait(timeout=20) == 0  # the background daemon, reaped as subreaper
            assert wait_mount(m.dir, False)
            assert "unmounting" in m.log()
        finally:
            m.stop()


def test_mount_command_and_fstab_options(build_dir, kvs, mnt, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mount(8) needs root")
    # mount.fuse3 runs "PROGRAM SOURCE MOUNTPOINT -o OPTIONS" with a fixed PATH; an installed
    # kvsfs is found as "-t fuse.kvsfs kvsfs" (the fstab form); the build tree's binary is named
    # with the equivalent "-t fuse PROGRAM#SOURCE" form
    env = env_for(kvs)
    prog = str(build_dir / "src" / "kvsfs")
    r = subprocess.run(["mount", "-t", "fuse", f"{prog}#kvsfs", mnt, "-o",
                        f"endpoint={kvs.url},cache_dir={tmp_path / 'c'},_netdev,noauto,nofail,user"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        assert os.path.ismount(mnt)
        with open("/proc/mounts") as f:
            line = [l for l in f if f" {mnt} " in l][0]
        assert line.split()[2] == "fuse.kvsfs" and line.split()[0] == "kvsfs", line
        os.listdir(mnt)
    finally:
        subprocess.run(["umount", mnt])
    assert wait_mount(mnt, False)


def test_secrets_never_in_cmdline_or_debug_log(build_dir, kvs, tmp_path):
    m = Mount(str(build_dir / "src" / "kvsfs"), kvs, tmp_path, {"debug": True}, name="dbg")
    m.start()
    try:
        for d, _, files in os.walk(m.dir):
            for f in files[:2]:
                if f.endswith(".mkv"):
                    open(os.path.join(d, f), "rb").read(100)
        with open(f"/proc/{m.pid}/cmdline", "rb") as f:
            cmdline = f.read()
        assert kvs.secret_key.encode() not in cmdline
    finally:
        m.stop()
    log = m.log()
    assert "signed POST" in log  # debug logging was on and covered signed requests
    assert kvs.secret_key not in log
    assert "Credential=" not in log and "Signature=" not in log
