"""Installation: `meson install` into a DESTDIR, and the Debian package built from a clean copy
of the tree with dpkg-buildpackage, unpacked into a scratch root; each installed kvsfs mounts
kvs-local. lintian's findings are printed (pytest -s shows them; they are not judged here)."""
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import Mount

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def isrv(kvs_servers, request):
    srv = kvs_servers.start(request)
    srv.seed_testsrc("cam1", duration=4)
    return srv


def mount_with(kvsfs, srv, root):
    """Mounts srv with this kvsfs binary, lists and reads a fragment, unmounts cleanly."""
    m = Mount(str(kvsfs), srv, root, {}, name="inst")
    m.expect_log(r"stream is not live")  # a readdirplus of cam1/ may start a live session
    m.start()
    try:
        assert os.listdir(m.dir) == ["cam1"]
        frags = [os.path.join(d, f) for d, _, fs in os.walk(m.path("cam1", "fragments")) for f in fs
                 if f.endswith(".mkv")]
        assert frags and open(frags[0], "rb").read(4) == b"\x1a\x45\xdf\xa3"
        assert "kvsfs_aws_requests_total" in open(m.path(".kvsfs", "metrics")).read()
    finally:
        m.stop()
    assert not m.unexpected_log_lines(), m.log()


def test_meson_install_into_destdir(build_dir, isrv, tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", str(build_dir), "--no-rebuild", "--destdir",
                        str(dest)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    prefix = subprocess.run(["meson", "introspect", "--buildoptions", str(build_dir)],
                            capture_output=True, text=True, timeout=120).stdout
    import json
    opts = {o["name"]: o["value"] for o in json.loads(prefix)}
    root = dest / opts["prefix"].lstrip("/")
    kvsfs = root / opts["bindir"] / "kvsfs"
    man = root / opts["mandir"] / "man1" / "kvsfs.1"
    assert kvsfs.is_file() and os.access(kvsfs, os.X_OK)
    assert man.is_file()
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert len(files) == 2, files  # the binary and its man page, nothing else (no test program)
    # the man page renders and documents the new commands
    out = subprocess.run(["man", "-l", str(man)], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MANWIDTH="100", MANPAGER="cat", PAGER="cat"))
    assert out.returncode == 0 and "kvsfs check" in out.stdout and ".kvsfs/" in out.stdout
    v = subprocess.run([str(kvsfs), "--version"], capture_output=True, text=True, timeout=30)
    assert v.returncode == 0 and v.stdout.startswith("kvsfs ")
    mount_with(kvsfs, isrv, tmp_path)


def tracked_files():
    r = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                        "--exclude-standard"], capture_output=True, timeout=60, check=True)
    return [f for f in r.stdout.decode().split("\0") if f and not f.startswith("build/")]


def test_debian_package_builds_installs_and_mounts(isrv, tmp_path):
    if not shutil.which("dpkg-buildpackage"):
        pytest.skip("dpkg-dev is not installed (scripts/lib/deps.sh lists it)")
    src = tmp_path / "src" / "kvsfs"
    src.mkdir(parents=True)
    for f in tracked_files():  # a clean tree: what git has, no build output
        if not (REPO / f).exists():
            continue
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f, follow_symlinks=False)
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                       capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    debs = sorted((tmp_path / "src").glob("kvsfs_*.deb"))
    assert len(debs) == 1, list((tmp_path / "src").iterdir())
    deb = debs[0]
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Depends"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert "Package: kvsfs" in info and "fuse3" in info
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    for path in ("./usr/bin/kvsfs", "./usr/share/man/man1/kvsfs.1.gz",
                 "./usr/share/doc/kvsfs/IAM.md", "./usr/share/doc/kvsfs/copyright"):
        assert path in listing, (path, listing)
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=120)
    mount_with(root / "usr" / "bin" / "kvsfs", isrv, tmp_path)
    lint = subprocess.run(["lintian", "--tag-display-limit", "0", str(deb)], capture_output=True,
                          text=True, timeout=600)
    print("\nlintian findings for", deb.name, ":\n" + (lint.stdout or "(none)\n") + lint.stderr)
