"""export/ against a reference model: seeded random sequences of create, write at random offsets,
truncate, rename (files and folders), unlink, mkdir/rmdir, close, fsync, reopen and read run
through the filesystem layer in-process (tests/tools/kvsfs-fs) against Ceph RGW behind the fault
proxy, and through a small in-memory model of what export/ shows and what the bucket must hold
(docs/EXPORT.md, docs/SEMANTICS.md "export/"). Every answer must be the model's (errno, bytes
read, sizes, listings); after every operation the bucket (boto3 list + get, straight from RGW)
must hold exactly the model's objects; at the end of a sequence every open file is closed, every
upload that failed is retried by an open + close, every file is read back and every folder
listed, and no multipart upload and no staging file is left.

Seeds: one sequence of OPS operations per seed; the seed picks the kind of sequence (seed % 5):
  0  no faults, with a 9.5 MiB file written sequentially (multipart parts sent while writing)
  1  transient faults: the next 1-2 requests get 503, or their connection drops before or after
     RGW acted; the HTTP retries absorb them, so answers and bucket are exactly the model's
  2  outages: every request fails (503 from the proxy, nothing reaches RGW) for one operation or
     a window of operations; seeds ending in 7 stop the gateway itself for the window. An
     operation then fails at its first S3 request with EIO (docs/ERRORS.md) and keeps exactly the
     local effects that precede that request (Model.remote() marks each S3 request)
  3  no faults
  4  lost answers: an upload at close/fsync reaches RGW but every answer is dropped: close fails,
     the object is then the previous version or the complete new one, never partial; plus
     single-operation outages
A failed upload keeps the staged data; a later close, fsync or open + close of the path stores
it, and the end of every sequence checks that everything converged.

Run one seed:  KVSFS_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest \\
                   tests/integration/fs/test_fs_export_model.py -q -k 'seed23'
More seeds:    KVSFS_MODEL_SEEDS=100-399 (same command); KVSFS_MODEL_OPS=60 for longer ones.
A failure names its seed and the operations that led to it.
"""
import hashlib
import os
import random

import pytest

from s3_local import FaultProxy


def _seeds():
    spec = os.environ.get("KVSFS_MODEL_SEEDS", "0-29")
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


OPS = int(os.environ.get("KVSFS_MODEL_OPS", "25"))
BUCKET = "exports"  # the export stack's bucket
PART = 8 << 20                  # export's default multipart part size
NET = {"EIO", "ETIMEDOUT", "ECONNREFUSED"}   # an S3 request that failed for good
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
FILES = ["a", "b", "c", "x/a", "x/b", "y/c", "x/z/a"]
DIRS = ["x", "y", "x/z"]
HANDLES = ["h0", "h1", "h2", "h3"]


class Err(Exception):
    """The errno an operation must fail with."""


class Net(Exception):
    """The operation's first S3 request fails (outage): it fails with an errno of NET."""


class Node:
    """A file: its bytes, and export's state for it (a node while open or not yet stored)."""

    def __init__(self, data=b"", path=None):
        self.data = bytearray(data)
        self.path = path            # None once unlinked or replaced while open
        self.dirty = False          # staged bytes not stored yet
        self.opens = 0              # writable handles
        self.seq_ok = True          # written sequentially so far (parts sent while writing)
        self.mpu_key = None         # key of the multipart upload under way

    def truncate(self, size):
        if self.mpu_key is not None and size != len(self.data):
            self.seq_ok = False
        del self.data[size:]
        self.data.extend(bytes(size - len(self.data)))
        self.dirty = True

    def write(self, off, data):
        if not data:
            return                  # nothing reaches the fs
        if off != len(self.data):
            self.seq_ok = False
        if off > len(self.data):
            self.data.extend(bytes(off - len(self.data)))
        self.data[off:off + len(data)] = data
        self.dirty = True
        if self.seq_ok and self.path is not None and self.mpu_key is None and \
                len(self.data) > PART:
            self.mpu_key = self.path  # the first part is queued: the upload starts


class Handle:
    def __init__(self, node, vpath):
        self.node = node
        self.vpath = vpath          # the path the fs layer knows the inode by (None: unlinked)


def parent(p):
    return p.rpartition("/")[0]


class Model:
    """What export/ shows and what the bucket holds. Operations raise Err or Net like the fs."""

    def __init__(self):
        self.files = {}             # path -> Node: the files export/ shows
        self.dirs = set()           # folders (each has its marker "D/" in s3)
        self.s3 = {}                # key below the prefix -> bytes
        self.handles = {}           # name -> Handle
        self.down = False           # outage: every S3 request fails, none reaches RGW

    def remote(self):
        """One S3 request."""
        if self.down:
            raise Net()

    def staged(self, p):
        n = self.files.get(p)
        return n is not None and (n.opens > 0 or n.dirty)

    def lookup(self, p):
        if p == "":
            return "d"
        if self.staged(p):
            return "f"
        self.remote()
        if p in self.files:
            return "f"
        if p in self.dirs:
            return "d"
        raise Err("ENOENT")

    def walk(self, p):
        kind, parts = "d", p.split("/") if p else []
        for i in range(len(parts)):
            if kind != "d":
                raise Err("ENOTDIR")
            kind = self.lookup("/".join(parts[:i + 1]))
        return kind

    def walk_dir(self, p):
        if self.walk(p) != "d":
            raise Err("ENOTDIR")

    def exists(self, p):
        try:
            return self.lookup(p)
        except Err as e:
            if str(e) != "ENOENT":
                raise
            return None

    def claim(self, key, exclude):
        """Something is about to be stored under key: a multipart upload still under way there
        for a file renamed away is aborted (that file is then uploaded under its new name)."""
        for n in list(self.files.values()) + [h.node for h in self.handles.values()]:
            if n is not exclude and n.mpu_key == key:
                n.mpu_key = None

    def finalize(self, n):
        """Stores a dirty node (close, fsync, release, cat of a file nobody has open)."""
        if n.path is None or not n.dirty:
            return
        self.claim(n.path, n)
        if not n.seq_ok:
            n.mpu_key = None  # the upload of parts is aborted: the whole file goes again
        try:
            if n.mpu_key is None and len(n.data) <= PART:
                self.remote()                         # PutObject
            else:
                if n.mpu_key is None:
                    self.remote()                     # CreateMultipartUpload
                    n.mpu_key = n.path
                self.remote()                         # parts, CompleteMultipartUpload
                if n.mpu_key != n.path:               # renamed meanwhile: completed under the
                    self.s3.pop(n.mpu_key, None)      # old key, copied over, deleted there
        except Net:
            n.mpu_key = None
            raise
        self.s3[n.path] = bytes(n.data)
        n.dirty, n.seq_ok, n.mpu_key = False, True, None

    def detach(self, n, p, ok):
        """n, at p, was unlinked or replaced: handles keep it; the fs layer forgets the name
        only when the operation succeeded (else its handles are 'diverged')."""
        n.path, n.dirty, n.mpu_key = None, False, None
        for h in self.handles.values():
            if h.node is n:
                h.vpath = None if ok else p

    # ---- operations (the driver's commands) ----

    def stage(self, p, trunc):
        """The staged node of existing file p (export's node_staged), emptied with trunc."""
        n = self.files[p]
        if not self.staged(p):
            self.remote()                             # HeadObject
            n.seq_ok, n.mpu_key = True, None
            if not trunc and n.data:
                self.remote()                         # GetObject into the staging file
        if trunc:
            n.truncate(0)
        return n

    def create(self, h, p):
        self.walk_dir(parent(p))
        kind = self.exists(p)
        if kind == "d":
            raise Err("EISDIR")
        if kind == "f":
            n = self.stage(p, True)
        else:
            self.remote()                             # HeadObject: not found
            n = self.files[p] = Node(path=p)
            n.dirty = True
        n.opens += 1
        self.handles[h] = Handle(n, p)

    def open(self, h, p, flags):
        if self.walk(p) == "d":
            raise Err("EISDIR")
        n = self.stage(p, "t" in flags)
        n.opens += 1
        self.handles[h] = Handle(n, p)

    def write(self, h, off, data):
        self.handles[h].node.write(off, data)
        return len(data)

    def read(self, h, off, length):
        return bytes(self.handles[h].node.data[off:off + length])

    def ftruncate(self, h, size):
        hd = self.handles[h]
        if hd.vpath is None:
            raise Err("ESTALE")  # the inode was unlinked: setattr cannot name it
        hd.node.truncate(size)
        return size

    def truncate(self, p, size):
        if self.walk(p) == "d":
            raise Err("EISDIR")
        n = self.stage(p, size == 0)
        n.truncate(size)
        if n.opens == 0:
            self.finalize(n)                          # stored at once
        if not self.staged(p):
            self.remote()                             # getattr: HeadObject
        return size

    def fsync(self, h):
        self.finalize(self.handles[h].node)

    def close(self, h):
        n = self.handles.pop(h).node
        try:
            self.finalize(n)                          # flush: the answer of close(2)
        finally:
            try:
                self.finalize(n)                      # release retries a failed upload
            except Net:
                pass
            n.opens -= 1

    def cat(self, p):
        if self.walk(p) == "d":
            raise Err("EISDIR")
        n = self.files[p]
        data = bytes(n.data)
        if self.staged(p):
            if n.opens == 0:
                self.finalize(n)                      # the last handle's flush retries
        else:
            self.remote()                             # HeadObject
            if data:
                self.remote()                         # GetObject
        return data

    def stat(self, p):
        kind = self.walk(p)
        if p and not self.staged(p):
            self.remote()                             # getattr: HeadObject
        return kind, 0 if kind == "d" else len(self.files[p].data)

    def ls(self, d):
        if self.walk(d) != "d":
            raise Err("ENOTDIR")
        self.remote()                                 # ListObjectsV2
        out = {p.rpartition("/")[2]: ("f", len(n.data)) for p, n in self.files.items()
               if parent(p) == d}
        out.update({q.rpartition("/")[2]: ("d", 0) for q in self.dirs if parent(q) == d})
        return out

    def mkdir(self, d):
        self.walk_dir(parent(d))
        if self.exists(d):
            raise Err("EEXIST")
        self.remote()                                 # PutObject of the marker
        self.dirs.add(d)
        self.s3[d + "/"] = b""

    def rmdir(self, d):
        self.walk_dir(parent(d))
        if self.lookup(d) != "d":
            raise Err("ENOTDIR")
        self.remote()                                 # HeadObject
        below = d + "/"
        if any(p.startswith(below) and self.staged(p) for p in self.files):
            raise Err("ENOTEMPTY")
        self.remote()                                 # ListObjects
        if any(k.startswith(below) and k != below for k in self.s3):
            raise Err("ENOTEMPTY")
        self.remote()                                 # DeleteObject of the marker
        self.dirs.discard(d)
        del self.s3[below]

    def unlink(self, p):
        self.walk_dir(parent(p))
        if self.lookup(p) == "d":
            raise Err("EISDIR")
        if not self.staged(p):
            self.remote()                             # HeadObject
        n = self.files.pop(p)
        try:
            self.remote()                             # DeleteObject
        except Net:
            self.detach(n, p, False)
            if p in self.s3:                          # the stored version shows again
                self.files[p] = Node(self.s3[p], p)
            raise
        self.detach(n, p, True)
        self.s3.pop(p, None)

    def rename(self, f, t):
        self.walk_dir(parent(f))
        self.walk_dir(parent(t))
        kf, kt = self.lookup(f), self.exists(t)
        if kt:
            if f == t:
                return
            if kt != kf:
                raise Err("EISDIR" if kt == "d" else "ENOTDIR")
        if not self.staged(f):
            self.remote()                             # HeadObject
        if kf == "d":
            raise Err("EXDEV")
        if not self.staged(t):
            self.remote()                             # HeadObject
        if parent(t):
            self.remote()                             # HeadObject of the parent
        n = self.files[f]
        self.claim(t, n)
        tn = self.files.pop(t) if self.staged(t) else None
        try:
            if self.staged(f) and n.dirty:            # renamed locally, stored later
                n.path = t
                self.files[t] = self.files.pop(f)
                self.remote()                         # DeleteObject of the old key
                self.s3.pop(f, None)
            else:
                self.remote()                         # CopyObject
                self.s3[t] = self.s3[f]
                self.remote()                         # DeleteObject
                del self.s3[f]
                n.path = t
                self.files[t] = self.files.pop(f)
        except Net:
            if tn is not None:
                self.detach(tn, t, False)
            for q in (f, t):
                if q not in self.files and q in self.s3:
                    self.files[q] = Node(self.s3[q], q)
            raise                                     # (the fs layer still names n f)
        if tn is not None:
            self.detach(tn, t, True)
        for h in self.handles.values():
            if h.node is n:
                h.vpath = t


# ---------------------------------------------------------------- the generator


def diverged(m, h):
    hd = m.handles[h]
    return hd.vpath is not None and hd.vpath != hd.node.path


def gen_op(rng, m, big):
    """One operation (a tuple) for the model state m: mostly valid, some on purpose not."""
    free = [h for h in HANDLES if h not in m.handles]
    hs = sorted(m.handles)
    nf, nd = len(m.files), len(m.dirs)
    w = {"truncate": 3 if nf else 0.3, "cat": 7 if nf else 1, "stat": 2, "ls": 2,
         "mkdir": 8 if nd < 2 else 2, "rmdir": 3 if nd else 0.3, "unlink": 5 if nf else 0.5,
         "rename": 8 if nf else 0.5}
    if free:
        w.update(create=14, open=4 if nf else 0)
    if hs:
        w.update(write=24, read=4, ftruncate=3, fsync=5, close=10)
    op = rng.choices(list(w), weights=list(w.values()))[0]
    files = sorted(m.files)
    dirs = sorted(m.dirs)
    # names whose folder exists (most operations should get past the path walk)
    placeable = [p for p in FILES if parent(p) == "" or parent(p) in m.dirs]
    new_dirs = [d for d in DIRS if parent(d) == "" or parent(d) in m.dirs]

    def pick(*pools):
        """From the first non-empty pool, with probability 0.9 each; else any name."""
        for pool in pools:
            if pool and rng.random() < 0.9:
                return rng.choice(pool)
        return rng.choice(FILES + DIRS)

    if op == "create":
        return ("create", free[0], pick(placeable))
    if op == "open":
        return ("open", free[0], pick(files), rng.choice(["rw", "w", "rwt"]))
    if op in ("write", "read", "ftruncate"):
        h = rng.choice(hs)
        size = len(m.handles[h].node.data)
        if op == "ftruncate":
            if diverged(m, h):
                return ("fsync", h)
            return ("ftruncate", h, rng.randint(0, size + 30000))
        off = rng.choice([size, size, rng.randint(0, size), rng.randint(0, size + 70000)])
        if op == "read":
            return ("read", h, off, rng.randint(0, 200000))
        n = rng.choice([rng.randint(0, 4096), rng.randint(1, 70000), rng.randint(1, 70000),
                        rng.randint(128 << 10, 400 << 10)])
        node = m.handles[h].node
        if big and not m.big_done and node.seq_ok and node.path and rng.random() < 0.3:
            m.big_done = True
            off, n = size, PART + (3 << 19)           # 9.5 MiB, sequential
        return ("write", h, off, rng.randbytes(n))
    if op in ("fsync", "close"):
        return (op, rng.choice(hs))
    if op == "truncate":
        p = pick(files)
        n = m.files.get(p)
        return ("truncate", p, rng.randint(0, (len(n.data) if n else 0) + 30000))
    if op in ("cat", "stat"):
        return (op, pick(files, dirs))
    if op == "ls":
        return ("ls", rng.choice([""] + dirs) if rng.random() < 0.8 else pick(files))
    if op == "mkdir":
        return ("mkdir", pick([d for d in new_dirs if d not in m.dirs], dirs))
    if op == "rmdir":
        return ("rmdir", pick(dirs))
    if op == "unlink":
        return ("unlink", pick(files))
    return ("rename", pick(files, dirs), pick(placeable))


# ---------------------------------------------------------------- running a sequence


@pytest.fixture(scope="module")
def stack(export_stack):
    """The export stack (RGW, bucket "exports", kvs-local with the gateway's keys, which the
    driver's start-up check lists) with a FaultProxy in front of the gateway."""
    assert export_stack.bucket == BUCKET
    with FaultProxy(export_stack.rgw.endpoint) as proxy:
        yield export_stack.rgw, export_stack.kvs, proxy


class Run:
    """One sequence: the driver, the model, the bucket, and the history for failure reports."""

    def __init__(self, seed, stack, fs_driver, tmp_path, prefix=None):
        self.seed, self.tmp = seed, tmp_path
        self.label = f"seed {seed} (mode {seed % 5})" if prefix is None else prefix[:-1]
        self.rgw, srv, self.proxy = stack
        self.mode = seed % 5
        self.prefix = prefix or f"seq{seed}/"
        self.s3 = self.rgw.s3()
        self.model = Model()
        self.model.big_done = False
        self.history = []
        self.nwrite = 0
        self.gateway_down = False
        self.cache = tmp_path / "cache"
        retry_ms = 60000 if self.mode in (0, 1, 3) else 300
        self.d = fs_driver(srv, cache=self.cache, export=f"s3://{BUCKET}/{self.prefix[:-1]}",
                           s3_endpoint=self.proxy.endpoint, s3_path_style=True,
                           max_retry_ms=retry_ms,
                           # the model compares every answer with S3 at once: no cached view
                           # (the 1-s export cache has its own tests in test_mount_export_small)
                           export_cache_ttl_ms=-1)
        self.d.ok("stat export")  # start-up done (HeadBucket) before any fault is set
        self.mpu_seen = self.proxy.count("CreateMultipartUpload")
        if self.mode in (2, 4):
            # failed requests and uploads are logged (one line each), as they should be
            self.d.expect_log(r"kvsfs\[(warning|error)\] (export|http|s3|vfs):")

    def fail(self, msg):
        tail = "\n".join(self.history[-40:])
        raise AssertionError(f"{self.label}: {msg}\nlast operations "
                             f"(line -> answer | model):\n{tail}")

    def line(self, op):
        kind, a = op[0], op[1:]
        path = lambda p: "export/" + p if p else "export"  # noqa: E731
        if kind == "write":
            f = self.tmp / f"w{self.nwrite}"
            self.nwrite += 1
            f.write_bytes(a[2])
            return f"write {a[0]} {a[1]} {f}"
        if kind in ("create", "fsync", "close", "read", "ftruncate"):
            return " ".join([kind, a[0]] + ([path(a[1])] if kind == "create" else
                                            [str(x) for x in a[1:]]))
        if kind == "open":
            return f"open {a[0]} {path(a[1])} {a[2]}"
        if kind == "truncate":
            return f"truncate {path(a[0])} {a[1]}"
        return " ".join([kind] + [path(p) for p in a])

    def expect(self, op):
        """The model's answer: ("ok", value), ("err", name) or ("net", None)."""
        try:
            v = getattr(self.model, op[0])(*op[1:])
            return "ok", v
        except Err as e:
            return "err", str(e)
        except Net:
            return "net", None

    def check_answer(self, op, want, got):
        kind, v = want
        if kind == "err":
            ok = got == f"err {v}"
        elif kind == "net":
            ok = got.startswith("err ") and got[4:] in NET
        elif not (got == "ok" or got.startswith("ok ")):
            ok = False
        elif op[0] in ("cat", "read"):
            ok = got == f"ok {len(v)} {hashlib.sha256(v).hexdigest()}"
        elif op[0] == "write":
            ok = got == f"ok {v}"
        elif op[0] in ("truncate", "ftruncate"):
            ok = got.split()[1] == f"size={v}"
        elif op[0] == "stat":
            f = dict(kv.split("=") for kv in got.split()[1:])
            ok = f["type"] == v[0] and int(f["size"]) == v[1]
        elif op[0] == "ls":
            ents = {}
            for e in got.split()[2:]:
                name, t, size = e.split(":")
                ents[name] = (t, int(size))
            ok = ents == v and int(got.split()[1]) == len(v)
        else:
            ok = True
        if not ok:
            self.fail(f"{self.line(op)!r} answered {got!r}, the model says {want[0]} "
                      f"{describe(want[1])}")

    def bucket(self):
        """{key below the prefix: bytes} as RGW holds it (straight, not through the proxy)."""
        out, token = {}, None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix, **kw)
            for o in r.get("Contents", []):
                key = o["Key"][len(self.prefix):]
                want = self.model.s3.get(key)
                etag = o["ETag"].strip('"')
                if want is not None and "-" not in etag and len(want) == o["Size"] and \
                        hashlib.md5(want).hexdigest() == etag:
                    out[key] = want
                else:
                    out[key] = self.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            if not r.get("IsTruncated"):
                return out
            token = r["NextContinuationToken"]

    def check_bucket(self):
        got = self.bucket()
        if got != self.model.s3:
            diff = {k: (describe(got.get(k)), describe(self.model.s3.get(k)))
                    for k in set(got) | set(self.model.s3) if got.get(k) != self.model.s3.get(k)}
            self.fail(f"bucket differs from the model (key: (bucket, model)): {diff}")

    def step(self, op, fault=None):
        """Runs op through the driver and the model (fault: what the proxy does meanwhile)."""
        m = self.model
        before = dict(m.s3)
        path = op[1] if op[0] in ("close", "fsync") else None
        node = m.handles[path].node if path else None
        m.down = fault in ("outage", "acted") or self.gateway_down
        want = self.expect(op)
        m.down = self.gateway_down
        line = self.line(op)
        if fault == "outage":
            self.proxy.fail(times=None)
        elif fault == "acted":
            self.proxy.reset_after(1 << 40, times=None)
        got = self.d.op(line)
        if fault in ("outage", "acted"):
            self.proxy.pass_through()
        self.history.append(f"{line[:100]} -> {got[:90]} | {want[0]} {describe(want[1])}"
                            + (f" [{fault}]" if fault else ""))
        self.check_answer(op, want, got)
        if fault == "acted" and want[0] == "net" and node is not None and node.path:
            # the upload reached RGW, its answers were lost: previous or complete, never partial
            key = node.path
            try:
                now = self.s3.get_object(Bucket=BUCKET, Key=self.prefix + key)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                now = None
            if now not in (before.get(key), bytes(node.data)):
                self.fail(f"after a failed upload {key} holds {describe(now)}: neither the "
                          f"previous {describe(before.get(key))} nor the new "
                          f"{describe(bytes(node.data))}")
            if now is None:
                m.s3.pop(key, None)
            else:
                m.s3[key] = now
        if op[0] == "write" and len(op[3]) > PART:
            # the multipart upload starts in the background: let it exist before going on
            if not self.proxy.wait_for("CreateMultipartUpload", self.mpu_seen + 1, timeout=60):
                self.fail("no CreateMultipartUpload after a 9.5 MiB sequential write")
        self.mpu_seen = self.proxy.count("CreateMultipartUpload")
        if not self.gateway_down:
            self.check_bucket()

    def converge(self):
        """Ends the sequence: no faults; every file closed and stored; everything read back."""
        m = self.model
        self.proxy.pass_through()
        if self.gateway_down:
            self.rgw.start_gateway()
            self.gateway_down = m.down = False
        for h in sorted(m.handles):
            self.step(("close", h))
        for p in sorted(m.files):
            if m.files[p].dirty:
                self.step(("cat", p))   # the retry of an upload that failed
        self.check_bucket()
        for d in [""] + sorted(m.dirs):
            self.step(("ls", d))
        for p in sorted(m.files):
            self.step(("cat", p))
        if self.d.close() != 0:
            self.fail(f"kvsfs-fs exited with {self.d.status}: {self.d.stderr}")
        left = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=self.prefix).get("Uploads", [])
        if left:
            self.fail(f"multipart uploads left behind: {[u['Key'] for u in left]}")
        staged = sorted(set(os.listdir(self.cache / "staging")) - {"lock"})
        if staged:
            self.fail(f"staging files left behind: {staged}")


def describe(v):
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes {hashlib.sha256(v).hexdigest()[:12]}>"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {describe(x)}" for k, x in sorted(v.items())) + "}"
    if isinstance(v, tuple):
        return "(" + ", ".join(describe(x) for x in v) + ")"
    return repr(v)


@pytest.mark.parametrize("seed", _seeds(), ids=lambda s: f"seed{s}")
def test_export_model(seed, stack, fs_driver, tmp_path):
    rng = random.Random(seed)
    stack[2].pass_through()
    run = Run(seed, stack, fs_driver, tmp_path)
    try:
        run_sequence(rng, run)
    finally:  # whatever happened, the next sequence finds the proxy and the gateway working
        run.proxy.pass_through()
        if run.gateway_down:
            run.rgw.start_gateway()
    if os.environ.get("KVSFS_MODEL_TRACE"):
        print("\n".join(run.history))


REMOTE_OPS = {"close", "fsync", "cat", "unlink", "rename", "truncate", "create", "open", "mkdir",
              "rmdir", "ls", "stat"}


def run_sequence(rng, run):
    seed = run.seed
    mode = run.mode
    window = set()
    if mode == 2:
        start = rng.randint(3, OPS - 6)
        window = set(range(start, start + rng.randint(2, 5)))
    for i in range(OPS):
        if i in window and not run.gateway_down and seed % 10 == 7:
            run.rgw.stop_gateway()
            run.gateway_down = run.model.down = True
        elif i not in window and run.gateway_down:
            run.rgw.start_gateway()
            run.gateway_down = run.model.down = False
        op = gen_op(rng, run.model, big=mode == 0)
        fault = None
        if mode == 1 and rng.random() < 0.5:
            run.proxy.pass_through()
            r = rng.random()
            if r < 0.4:
                run.proxy.fail_next(rng.randint(1, 2))
            elif r < 0.7:
                run.proxy.reset_after(0, times=1)
            else:
                run.proxy.reset_after(1 << 40, times=1)   # the server acts, the answer is lost
        elif (mode == 2 and i in window and seed % 10 != 7) or \
                (mode in (2, 4) and op[0] in REMOTE_OPS and rng.random() < 0.3):
            fault = "outage"
        if mode == 4 and op[0] in ("close", "fsync") and rng.random() < 0.6:
            fault = "acted"
        run.step(op, fault)
    run.converge()


BIG = PART + (3 << 19)
SCENARIOS = {
    # a file renamed while its multipart upload runs; its old name is reused and stored meanwhile
    "rename-during-multipart-then-reuse": [
        ("mkdir", "x"), ("create", "h0", "a"), ("write", "h0", 0, BIG), ("rename", "a", "x/b"),
        ("create", "h1", "a"), ("write", "h1", 0, 1000), ("close", "h1"), ("cat", "a"),
        ("close", "h0")],
    # ... and another file renamed onto its old name
    "rename-during-multipart-then-rename-onto-it": [
        ("create", "h0", "a"), ("write", "h0", 0, BIG), ("rename", "a", "b"),
        ("create", "h1", "c"), ("write", "h1", 0, 5000), ("close", "h1"), ("rename", "c", "a"),
        ("close", "h0")],
    # ... and a new file at the old name still open when the renamed one is stored
    "rename-during-multipart-old-name-open": [
        ("create", "h0", "a"), ("write", "h0", 0, BIG), ("rename", "a", "b"),
        ("create", "h1", "a"), ("write", "h1", 0, 3000), ("fsync", "h1"), ("close", "h0"),
        ("close", "h1")],
    # two files with multipart uploads under way swap their names
    "swap-names-during-multipart": [
        ("create", "h0", "a"), ("write", "h0", 0, BIG), ("create", "h1", "b"),
        ("write", "h1", 0, BIG), ("rename", "a", "c"), ("rename", "b", "a"), ("rename", "c", "b"),
        ("close", "h0"), ("close", "h1")],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_export_model_scenario(name, stack, fs_driver, tmp_path):
    """Hand-written sequences for what random ones rarely reach (no faults)."""
    rng = random.Random(name)
    stack[2].pass_through()
    run = Run(3, stack, fs_driver, tmp_path, prefix=f"{name}/")
    for op in SCENARIOS[name]:
        if op[0] == "write":
            op = op[:3] + (rng.randbytes(op[3]),)
        run.step(op)
    run.converge()
