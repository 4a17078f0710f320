"""Extended attributes of every node kind, and the smaller export/ contracts (issue 9, item 3,
and items 6a KEY and KEY/, 6b links, 6c the errno of a failed close), through the real daemon.

getfattr, rsync -aX and mv of a folder (whose copy fallback reads attributes) walk every kind the
tree has; afterwards the daemon must still run and the mount still answer. The export stack (Ceph
RGW + kvs-local) is the shared `export_stack` (tests/integration/conftest.py); the AWS CLI and
boto3 write the objects that kvsfs must show."""
import errno
import os
import stat
import subprocess
import time

import pytest

from kvsfs_procs import daemon_pids
from kvsfs_testing import fragment_files, md5

STREAM = "short"  # the one stream these mounts show (streams=), with a short retention

ALL_FRAGMENT_XATTRS = ["user.kvs.duration_ms", "user.kvs.fragment_number", "user.kvs.kvs_size",
                       "user.kvs.producer_timestamp", "user.kvs.server_timestamp", "user.kvs.stream"]


def iso(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


@pytest.fixture(scope="module")
def short(stack):
    """A stream of 6 s of video one hour ago, kept 2 hours: its fragments/ has a day or two and
    about three hours, so listing and copying the whole mount stays small."""
    _, srv, _ = stack
    srv.create_stream(STREAM, retention_hours=2)
    start = int(time.time()) - 3600
    srv.seed_testsrc(STREAM, duration=6, start_ts=start)
    return start


def assert_alive(m):
    assert daemon_pids(m.dir), "the kvsfs daemon is gone:\n" + m.log()[-3000:]
    assert os.path.ismount(m.dir)
    names = os.listdir(m.dir)  # ENOTCONN if the daemon died
    assert STREAM in names and "export" in names
    os.stat(m.path("export"))


def getfattr_dump(path):
    r = subprocess.run(["getfattr", "-d", "-m", "-", "--absolute-names", path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, (path, r.stderr)
    return {l.split("=", 1)[0]: l.split("=", 1)[1].strip('"') for l in r.stdout.splitlines()
            if "=" in l and not l.startswith("#")}


def every_kind(m, start):
    """One path of every node kind of the tree, by kind."""
    frags = fragment_files(m.path(STREAM, "fragments"))
    assert frags
    hour = os.path.dirname(frags[0])
    clip = m.path(STREAM, "clips", f"{iso(start)}-{iso(start + 4)}.mp4")
    os.stat(clip)  # makes the clip, so clips/ lists one
    return {
        "root": m.dir, "stream": m.path(STREAM), "fragments": m.path(STREAM, "fragments"),
        "day": os.path.dirname(hour), "hour": hour, "fragment": frags[0],
        "clips": m.path(STREAM, "clips"), "clip": clip,
        "live_hls": m.path(STREAM, "live.m3u8"), "live_dash": m.path(STREAM, "live.mpd"),
        "export_root": m.path("export"), "export_dir": m.path("export", "d"),
        "export_file": m.path("export", "d", "a.txt"), "export_top_file": m.path("export", "b.bin"),
    }


def make_export_content(m):
    os.makedirs(m.path("export", "d"), exist_ok=True)
    with open(m.path("export", "d", "a.txt"), "w") as f:
        f.write("hello")
    with open(m.path("export", "b.bin"), "wb") as f:
        f.write(os.urandom(3000))


def test_every_kind_answers_getfattr_and_stays_up(stack, short, xmount):
    m = xmount(prefix="xattr-walk", streams=STREAM)
    m.expect_log(r"not live")  # stat/getfattr of live.m3u8 and live.mpd: the stream is not live
    make_export_content(m)
    paths = every_kind(m, short)
    expected = {k: {"user.kvs.stream": STREAM} for k in
                ("stream", "fragments", "day", "hour", "clips", "clip", "live_hls", "live_dash")}
    expected.update({k: {} for k in ("root", "export_root", "export_dir", "export_file",
                                     "export_top_file")})
    for kind, path in paths.items():
        got = getfattr_dump(path)
        if kind == "fragment":
            assert sorted(got) == ALL_FRAGMENT_XATTRS, got
            assert got["user.kvs.stream"] == STREAM
            assert os.path.basename(path).startswith(iso(int(float(got["user.kvs.producer_timestamp"])))[:15])
        else:
            assert got == expected[kind], (kind, got)
        # the one attribute by name, as `getfattr -n` asks for it
        r = subprocess.run(["getfattr", "-n", "user.kvs.stream", "--only-values", path],
                           capture_output=True, text=True, timeout=60)
        if kind.startswith("export") or kind == "root":
            assert r.returncode == 1 and "No such attribute" in r.stderr, (kind, r)
            with pytest.raises(OSError) as e:
                os.getxattr(path, "user.kvs.stream")
            assert e.value.errno == errno.ENODATA, kind
            assert os.listxattr(path) == [], kind
        else:
            assert r.returncode == 0 and r.stdout == STREAM, (kind, r)
        # names kvsfs does not have, with and without a buffer
        for name in ("user.other", "security.selinux", "system.posix_acl_access", "trusted.x"):
            with pytest.raises(OSError) as e:
                os.getxattr(path, name)
            assert e.value.errno in (errno.ENODATA, errno.EOPNOTSUPP), (kind, name, e.value)
        # setting and removing: ENOTSUP in export/ (S3 keeps none), EROFS in the KVS tree
        want = errno.ENOTSUP if kind.startswith("export") else errno.EROFS
        for call in (lambda: os.setxattr(path, "user.x", b"1"), lambda: os.removexattr(path, "user.x")):
            with pytest.raises(OSError) as e:
                call()
            assert e.value.errno == want, (kind, e.value)
        assert_alive(m)


def test_rsync_ax_of_the_whole_mount_and_mv_of_a_folder(stack, short, xmount, tmp_path):
    rgw, _, _ = stack
    m = xmount(prefix="xattr-rsync", streams=STREAM)
    m.expect_log(r"not live")  # live.m3u8 / live.mpd cannot be read: the stream is not live
    make_export_content(m)
    paths = every_kind(m, short)
    dest = tmp_path / "copy"
    r = subprocess.run(["rsync", "-aX", m.dir + "/", str(dest) + "/"], capture_output=True, text=True,
                       timeout=300)
    # the live files of a stream that is not live fail to read (ENODATA); nothing else may fail
    errors = [l for l in r.stderr.splitlines() if l.startswith("rsync:")
              and "live.m3u8" not in l and "live.mpd" not in l
              and "some files/attrs were not transferred" not in l]
    assert r.returncode in (0, 23) and not errors, r.stderr
    assert_alive(m)
    # what was copied is what the mount shows, attributes included
    src_frags = fragment_files(m.path(STREAM, "fragments"))
    got = fragment_files(str(dest / STREAM / "fragments"))
    assert [os.path.relpath(f, m.path(STREAM)) for f in src_frags] == \
        [os.path.relpath(f, str(dest / STREAM)) for f in got]
    for s, d in zip(src_frags, got):
        assert md5(s) == md5(d)
        assert os.getxattr(d, "user.kvs.fragment_number") == os.getxattr(s, "user.kvs.fragment_number")
    clip = dest / STREAM / "clips" / os.path.basename(paths["clip"])
    assert md5(clip) == md5(paths["clip"])
    assert os.getxattr(str(dest / STREAM), "user.kvs.stream").decode() == STREAM
    assert (dest / "export" / "d" / "a.txt").read_text() == "hello"
    assert md5(dest / "export" / "b.bin") == md5(paths["export_top_file"])
    assert os.listxattr(str(dest / "export" / "d" / "a.txt")) == []

    # mv of a folder inside export/: rename gives EXDEV, mv copies (reading attributes) and deletes
    e = m.path("export")
    os.makedirs(os.path.join(e, "dirA", "sub"))
    with open(os.path.join(e, "dirA", "f1.txt"), "w") as f:
        f.write("one")
    with open(os.path.join(e, "dirA", "sub", "f2.txt"), "w") as f:
        f.write("two")
    r = subprocess.run(["mv", os.path.join(e, "dirA"), os.path.join(e, "dirB")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert_alive(m)
    assert not os.path.exists(os.path.join(e, "dirA"))
    assert open(os.path.join(e, "dirB", "f1.txt")).read() == "one"
    assert open(os.path.join(e, "dirB", "sub", "f2.txt")).read() == "two"
    keys = sorted(o["Key"] for o in rgw.s3().list_objects_v2(Bucket="exports", Prefix="xattr-rsync/dir")
                  .get("Contents", []))
    assert [k for k in keys if not k.endswith("/")] == ["xattr-rsync/dirB/f1.txt",
                                                        "xattr-rsync/dirB/sub/f2.txt"]


def test_a_name_that_is_both_an_object_and_a_folder_is_listed_once_as_the_file(stack, xmount, tmp_path):
    """KEY and KEY/ (a folder marker, or objects below KEY/) both in the bucket: the name is
    listed once, as the file, as stat shows it (docs/EXPORT.md)."""
    rgw, _, _ = stack
    s3 = rgw.s3()
    s3.put_object(Bucket="exports", Key="dup/a", Body=b"file a")
    s3.put_object(Bucket="exports", Key="dup/a/", Body=b"")  # a folder marker of the same name
    s3.put_object(Bucket="exports", Key="dup/a.txt", Body=b"between a and a/")
    src = tmp_path / "b.bin"
    src.write_bytes(b"file b")
    for key in ("dup/b", "dup/b/inner.txt", "dup/c/inner.txt"):  # b: also an implicit folder
        r = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3", "cp", str(src),
                            f"s3://exports/{key}"], env=rgw.aws_env(), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    m = xmount(prefix="dup")
    e = m.path("export")
    names = sorted(os.listdir(e))
    assert names == ["a", "a.txt", "b", "c"], names
    kinds = {d.name: d.is_dir(follow_symlinks=False) for d in os.scandir(e)}
    assert kinds == {"a": False, "a.txt": False, "b": False, "c": True}
    for name, body in (("a", b"file a"), ("b", b"file b")):
        st = os.stat(os.path.join(e, name))
        assert stat.S_ISREG(st.st_mode) and st.st_size == len(body)
        assert open(os.path.join(e, name), "rb").read() == body
    # ls -l agrees with stat (readdirplus attributes)
    r = subprocess.run(["ls", "-l", e], capture_output=True, text=True, check=True)
    lines = [l for l in r.stdout.splitlines() if l.split()[-1] in ("a", "b")]
    assert len(lines) == 2 and all(l.startswith("-") for l in lines), r.stdout
    # removing the file shows the folder again
    os.unlink(os.path.join(e, "b"))
    assert os.path.isdir(os.path.join(e, "b"))
    assert os.listdir(os.path.join(e, "b")) == ["inner.txt"]
    assert sorted(os.listdir(e)) == ["a", "a.txt", "b", "c"]


def test_links_and_special_files_are_eperm_in_export_and_erofs_elsewhere(stack, short, xmount):
    m = xmount(prefix="links", streams=STREAM)
    make_export_content(m)
    e = m.path("export")
    target = os.path.join(e, "b.bin")
    frag = fragment_files(m.path(STREAM, "fragments"))[0]
    cases = [
        # (what, call, errno)
        ("ln -s in export/", lambda: os.symlink("b.bin", os.path.join(e, "s")), errno.EPERM),
        ("ln -s in an export folder", lambda: os.symlink("x", os.path.join(e, "d", "s")), errno.EPERM),
        ("ln in export/", lambda: os.link(target, os.path.join(e, "h")), errno.EPERM),
        ("ln of a fragment into export/", lambda: os.link(frag, os.path.join(e, "h2")), errno.EPERM),
        ("mkfifo in export/", lambda: os.mkfifo(os.path.join(e, "p")), errno.EPERM),
        ("ln -s in the root", lambda: os.symlink("x", m.path("s")), errno.EROFS),
        ("ln -s in a stream", lambda: os.symlink("x", m.path(STREAM, "s")), errno.EROFS),
        ("ln -s in an hour", lambda: os.symlink("x", os.path.join(os.path.dirname(frag), "s")),
         errno.EROFS),
        ("ln of a fragment", lambda: os.link(frag, os.path.join(os.path.dirname(frag), "h")),
         errno.EROFS),
        ("ln of an export file into the tree", lambda: os.link(target, m.path(STREAM, "h")),
         errno.EROFS),
        ("mkfifo in a stream", lambda: os.mkfifo(m.path(STREAM, "p")), errno.EROFS),
    ]
    for what, call, want in cases:
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == want, (what, err.value)
    # the command-line tools say the same
    r = subprocess.run(["ln", "-s", "b.bin", os.path.join(e, "s")], capture_output=True, text=True)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    r = subprocess.run(["ln", target, os.path.join(e, "h")], capture_output=True, text=True)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    r = subprocess.run(["ln", "-s", "x", m.path(STREAM, "s")], capture_output=True, text=True)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r.stderr
    assert sorted(os.listdir(e)) == ["b.bin", "d"]
    assert_alive(m)


def test_failed_close_gives_the_errno_of_errors_md_as_the_man_page_says(stack, short, xmount):
    """Issue 9, 6c: the man page said a failed close gives EIO; it gives the errno of the
    failure (docs/ERRORS.md), here ECONNREFUSED: the S3 endpoint (a proxy in this process, so
    no forked child inherits the descriptor and flushes it early) stops listening before close."""
    from s3_local.proxy import FaultProxy
    rgw, _, _ = stack
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    man = open(os.path.join(root, "man", "kvsfs.1")).read()
    para = man[man.index(".BI export= s3://BUCKET/PREFIX"):man.index(".BI export_dir=")]
    assert "fail with EIO when" not in para
    errors_md = open(os.path.join(root, "docs", "ERRORS.md")).read()
    for name in ("EIO", "ECONNREFUSED", "EHOSTUNREACH", "ETIMEDOUT", "EACCES", "EAGAIN"):
        assert name in para, name
        assert f"`{name}`" in errors_md, name
    proxy = FaultProxy(rgw.endpoint)
    try:
        m = xmount(prefix="closeerr", endpoint=proxy.endpoint, streams=STREAM, max_retry_time=3)
        m.expect_log(r"closeerr|f\.bin|refused|ECONNREFUSED")  # the failed uploads are logged
        f = open(m.path("export", "f.bin"), "wb")
        f.write(os.urandom(100_000))
    finally:
        proxy.close()
    with pytest.raises(OSError) as err:
        f.close()
    assert err.value.errno == errno.ECONNREFUSED, err.value
    with pytest.raises(Exception):
        rgw.s3().head_object(Bucket="exports", Key="closeerr/f.bin")  # not stored, not partial
    assert_alive(m)
