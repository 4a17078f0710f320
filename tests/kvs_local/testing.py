"""Test helpers: start kvs-local as a subprocess and talk to it.

    from kvs_local.testing import start_server, boto3_client
    srv = start_server(tmp_path / "kvs")          # port 0, ready in < 1 s
    try:
        kv = boto3_client(srv, "kinesisvideo")
        srv.seed_testsrc("cam1", duration=6)
    finally:
        srv.stop()
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request

from . import seed as _seed

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"


class Server:
    def __init__(self, data_dir, access_key="AKIDKVSLOCAL", secret_key="kvslocalsecret", region="us-east-1",
                 log_level="INFO", **opts):
        self.data_dir = str(data_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.log_level = log_level
        self.opts = opts
        self.proc = None
        self.port = opts.pop("port", 0)
        self.url = None
        self.log_path = None

    # ------------------------------------------------------------ process control
    def _args(self):
        args = [PYTHON, "-m", "kvs_local", "--data", self.data_dir, "--host", "127.0.0.1",
                "--port", str(self.port), "--port-file", self._port_file, "--access-key", self.access_key,
                "--secret-key", self.secret_key, "--region", self.region, "--log-level", self.log_level]
        for k, v in self.opts.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                args.append(flag)
            elif v is False or v is None:
                continue
            elif isinstance(v, (list, tuple)):
                for item in v:
                    args += [flag, str(item)]
            else:
                args += [flag, str(v)]
        return args

    def start(self, timeout=10.0):
        os.makedirs(self.data_dir, exist_ok=True)
        self._port_file = os.path.join(self.data_dir, f".port.{os.getpid()}.{id(self)}")
        if os.path.exists(self._port_file):
            os.unlink(self._port_file)
        self.log_path = os.path.join(self.data_dir, "server.log")
        env = dict(os.environ)
        env["PYTHONPATH"] = TESTS_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._args(), env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kvs-local exited with {self.proc.returncode}; log:\n{self.log()}")
            if os.path.exists(self._port_file):
                port = int(open(self._port_file).read())
                self.url = f"http://127.0.0.1:{port}"
                try:
                    self.admin_get("health")
                    self.port = port  # a restart reuses the same port
                    return self
                except OSError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("kvs-local did not become ready")

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            self._log.close()

    def restart(self):
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return open(self.log_path, errors="replace").read()
        except OSError:
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ admin endpoint
    def admin_get(self, path):
        with urllib.request.urlopen(self.url + "/_admin/" + path, timeout=30) as r:
            return json.loads(r.read())

    def admin(self, body: dict, path: str = "faults"):
        """POST to the admin endpoint (default: /_admin/faults)."""
        req = urllib.request.Request(self.url + "/_admin/" + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())

    def counters(self) -> dict:
        return self.admin_get("counters")

    def reset_counters(self):
        return self.admin({}, "counters/reset")

    def faults(self, spec: dict):
        return self.admin(spec, "faults")

    def clear_faults(self):
        return self.admin({"clear": True}, "faults")

    def config(self, **kw):
        return self.admin(kw, "config")

    # ------------------------------------------------------------ seeding (real signed PutMedia)
    def _kw(self):
        return dict(ak=self.access_key, sk=self.secret_key, region=self.region)

    def create_stream(self, name, retention_hours=24, media_type=None):
        _seed.ensure_stream(self.url, name, retention_hours, media_type=media_type, **self._kw())

    def seed_testsrc(self, stream, duration=6.0, codec="h264", audio=False, start_ts=None, **kw):
        return _seed.seed_testsrc(self.url, stream, duration, codec, audio, start_ts, **kw, **self._kw())

    def seed_file(self, stream, path, start_ts=None, **kw):
        return _seed.seed_file(self.url, stream, path, start_ts, **kw, **self._kw())

    def seed_live(self, stream, **kw) -> _seed.LiveSeeder:
        return _seed.LiveSeeder(self.url, stream, **kw, **self._kw())

    def seed_bulk(self, stream, count=1000, start_ts=None, interval_ms=2000, **kw) -> dict:
        return _seed.seed_bulk(self.url, stream, count, start_ts, interval_ms, **kw, **self._kw())

    def put_media(self, stream, body, **kw) -> _seed.PutMediaResult:
        return _seed.put_media(self.url, stream, body, self.access_key, self.secret_key, self.region, **kw)


def start_server(data_dir=None, **opts) -> Server:
    """Starts kvs-local on 127.0.0.1, port 0 (or opts['port']); returns when it answers (< 1 s).
    opts are command-line options: no_quotas=True, sort_fragments=True, fault=[...], log_level="DEBUG"..."""
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="kvs-local-")
    return Server(data_dir, **opts).start()


def boto3_client(server: Server, service: str, **kw):
    import boto3
    from botocore.config import Config
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                 max_pool_connections=20)
    return boto3.client(service, endpoint_url=server.url, region_name=server.region,
                        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                        config=kw.pop("config", cfg), **kw)


def retry_throttled(fn, *a, **kw):
    """Calls a boto3 operation, backing off on ClientLimitExceededException (kvs-local's quotas
    are the service's, so an independent client gets throttled too)."""
    from botocore.exceptions import ClientError
    for attempt in range(30):
        try:
            return fn(*a, **kw)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ClientLimitExceededException":
                raise
            time.sleep(min(2.0, 0.2 * (attempt + 1)))
    raise AssertionError("throttled for too long")


_ARCHIVED_MEDIA = {}


def archived_media(server: Server, stream: str):
    """A boto3 kinesis-video-archived-media client on the data endpoint that GetDataEndpoint
    names for stream's GetMediaForFragmentList (asked once per server and stream, throttling
    retried), as a KVS application does."""
    key = (server.url, server.access_key, server.secret_key, stream)
    if key not in _ARCHIVED_MEDIA:
        import boto3
        kv = boto3_client(server, "kinesisvideo")
        ep = retry_throttled(kv.get_data_endpoint, StreamName=stream,
                             APIName="GET_MEDIA_FOR_FRAGMENT_LIST")["DataEndpoint"]
        _ARCHIVED_MEDIA[key] = boto3.client("kinesis-video-archived-media", endpoint_url=ep,
                                            region_name=server.region,
                                            aws_access_key_id=server.access_key,
                                            aws_secret_access_key=server.secret_key)
    return _ARCHIVED_MEDIA[key]


def get_media_for_fragment_list(server: Server, stream: str, numbers) -> bytes:
    """The bytes of GetMediaForFragmentList of fragments numbers through boto3, the
    independent client (throttling retried)."""
    am = archived_media(server, stream)
    r = retry_throttled(am.get_media_for_fragment_list, StreamName=stream, Fragments=list(numbers))
    return r["Payload"].read()


gmffl = get_media_for_fragment_list


def aws_cli_env(server: Server) -> dict:
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
               AWS_DEFAULT_REGION=server.region, AWS_PAGER="", AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def aws_cli(server: Server, *args, check=True) -> subprocess.CompletedProcess:
    """Runs /usr/bin/aws against the server (--endpoint-url, credentials through env)."""
    p = subprocess.run(["/usr/bin/aws", "--endpoint-url", server.url, "--output", "json", *args],
                       env=aws_cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
    return p


# ------------------------------------------------------------------ MKV layout helpers for tests
def split_documents(buf: bytes) -> list[bytes]:
    """Splits a GetMedia/GetMediaForFragmentList body into its self-contained MKV documents."""
    from . import mkv
    els = mkv.walk_documents(buf)
    out = []
    for i, e in enumerate(els):
        if e.id == mkv.EBML:
            end = els[i + 1].end if i + 1 < len(els) and els[i + 1].id == mkv.SEGMENT else e.end
            out.append(buf[e.offset:end])
    return out


def kvs_layout(buf: bytes) -> list[list]:
    """Per document: the element layout that matters for KVS output compatibility: EBML header children,
    Segment size width/unknown, the order of Segment children, the full KVS Tags subtree with size widths
    and tag names, the Cluster's leading children. Producer Cues (only in the last fragment) are skipped."""
    from . import mkv
    docs = []
    cur = None
    for e in mkv.walk_documents(buf):
        if e.id == mkv.EBML:
            cur = [("EBML", e.size_width if False else None, tuple(c.id for c in e.children))]
            docs.append(cur)
        elif e.id == mkv.SEGMENT and cur is not None:
            cur.append(("Segment", e.size, e.size_width, buf[e.offset + 4:e.data_offset].hex()))
            for c in e.children:
                if c.id == mkv.CUES:
                    continue
                if c.id == mkv.TAGS:
                    names = [n for n, _ in mkv.simple_tags(c, buf)]
                    if any(n and n.startswith("AWS_KINESISVIDEO") for n in names):
                        sub = []
                        for t in c.children:
                            sub.append(("Tag", t.size_width, tuple(
                                ("SimpleTag", st.size_width, tuple((x.id, x.size_width) for x in st.children))
                                for st in t.children)))
                        cur.append(("KvsTags", c.size_width, tuple(names), tuple(sub)))
                        continue
                if c.id == mkv.CLUSTER:
                    kids = [x.id for x in c.children]
                    lead = tuple(kids[:kids.index(mkv.TIMECODE) + 1]) if mkv.TIMECODE in kids else tuple(kids)
                    rest = set(kids[len(lead):])
                    cur.append(("Cluster", lead, tuple(sorted(rest))))
                    continue
                cur.append((c.name,))
    return docs
