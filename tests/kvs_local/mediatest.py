"""Helpers for the media test suites (tests/integration/servers/kvs_local/test_media_*.py).

They talk to kvs-local only through the real AWS clients (boto3 / /usr/bin/aws), plain HTTP GETs of
session URLs (as a player would) and ffprobe; nothing here imports the server's media code.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from .testing import boto3_client

FFPROBE = "/usr/bin/ffprobe"


def archived_media(srv, stream: str, api: str = "GET_CLIP"):
    """boto3 kinesis-video-archived-media client on the stream's data endpoint (GetDataEndpoint)."""
    kv = boto3_client(srv, "kinesisvideo")
    ep = kv.get_data_endpoint(StreamName=stream, APIName=api)["DataEndpoint"]
    import boto3
    from botocore.config import Config
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=300)
    return boto3.client("kinesis-video-archived-media", endpoint_url=ep, region_name=srv.region,
                        aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key, config=cfg)


def fragments(am, stream: str, start: float | None = None, end: float | None = None,
              ts_type: str = "SERVER_TIMESTAMP") -> list[dict]:
    """All fragments (ListFragments, every page), sorted by producer timestamp."""
    now = time.time()
    sel = {"FragmentSelectorType": ts_type,
           "TimestampRange": {"StartTimestamp": start if start is not None else now - 86000,
                              "EndTimestamp": end if end is not None else now + 60}}
    out = []
    kw = {"StreamName": stream, "FragmentSelector": sel, "MaxResults": 1000}
    while True:
        r = am.list_fragments(**kw)
        out += r["Fragments"]
        if not r.get("NextToken"):
            break
        kw = {"StreamName": stream, "NextToken": r["NextToken"], "MaxResults": 1000}
    out.sort(key=lambda f: (f["ProducerTimestamp"], int(f["FragmentNumber"])))
    return out


def ts(dt) -> float:
    return dt.timestamp() if hasattr(dt, "timestamp") else float(dt)


def ffprobe_streams(target: str, count_frames: bool = True, timeout: float = 180,
                    count_packets: bool = False) -> list[dict]:
    """ffprobe's stream list; with count_frames every frame is decoded (nb_read_frames)."""
    args = [FFPROBE, "-v", "error"]
    if count_frames:
        args.append("-count_frames")
    if count_packets:
        args.append("-count_packets")
    args += ["-show_entries", "stream=index,codec_name,codec_type,nb_read_frames,nb_read_packets,width,height,"
             "sample_rate,duration",
             "-of", "json", target]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"ffprobe failed on {target}: {p.stderr.decode()[-2000:]}")
    return json.loads(p.stdout)["streams"]


def by_type(streams: list[dict]) -> dict:
    out = {}
    for s in streams:
        out.setdefault(s["codec_type"], s)
    return out


def packet_times(target: str, kind: str = "v", timeout: float = 180) -> list[tuple[float, float, float]]:
    """[(pts, dts, duration)] in seconds of every packet of the first stream of the kind."""
    p = subprocess.run([FFPROBE, "-v", "error", "-select_streams", f"{kind}:0", "-show_entries",
                        "packet=pts_time,dts_time,duration_time", "-of", "json", target],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"ffprobe failed on {target}: {p.stderr.decode()[-2000:]}")
    out = []
    for pk in json.loads(p.stdout).get("packets", []):
        def f(k):
            v = pk.get(k)
            return float(v) if v not in (None, "N/A") else float("nan")
        out.append((f("pts_time"), f("dts_time"), f("duration_time")))
    return out


def media_span(target: str, kind: str = "v") -> tuple[int, float]:
    """(packet count, presentation span in seconds: last end - first start)."""
    pk = packet_times(target, kind)
    if not pk:
        return 0, 0.0
    starts = sorted(p[0] for p in pk)
    step = min((b - a for a, b in zip(starts, starts[1:]) if b > a), default=0.0)
    last_dur = pk[-1][2] if pk[-1][2] == pk[-1][2] and pk[-1][2] > 0 else step
    return len(pk), starts[-1] + last_dur - starts[0]


def max_gap(target: str, kind: str = "v") -> float:
    """Largest jump between consecutive presentation times (detects gaps/overlaps between segments)."""
    starts = sorted(p[0] for p in packet_times(target, kind))
    return max((b - a for a, b in zip(starts, starts[1:])), default=0.0)


def top_boxes(path_or_bytes) -> list[str]:
    buf = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb").read()
    out = []
    pos = 0
    while pos + 8 <= len(buf):
        size, typ = struct.unpack(">I4s", buf[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", buf[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(buf) - pos
        if size < 8:
            break
        out.append(typ.decode("latin-1"))
        pos += size
    return out


def http_get(url: str, method: str = "GET", headers: dict | None = None, timeout: float = 60):
    """(status, headers(dict, lower-case keys), body) — errors are returned, not raised."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def must_get(url: str) -> bytes:
    st, h, b = http_get(url)
    if st != 200:
        raise AssertionError(f"GET {url} -> {st}: {b[:500]!r}")
    return b


def resolve(base: str, ref: str) -> str:
    return urllib.parse.urljoin(base, ref)


def playlist_uris(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def hls_tracks(master_url: str) -> dict[str, str]:
    """{'1': media playlist URL, '2': ...} from a master playlist."""
    master = must_get(master_url).decode()
    out = {}
    for ln in master.splitlines():
        m = re.search(r'URI="([^"]+)"', ln) if ln.startswith("#EXT-X-MEDIA") else None
        uri = m.group(1) if m else (ln.strip() if ln.strip() and not ln.startswith("#") else None)
        if uri:
            tn = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query).get("TrackNumber", ["all"])[0]
            out[tn] = resolve(master_url, uri)
    return out


def hls_download(playlist_url: str, out_path: str, playlist_text: str | None = None) -> tuple[str, list[str]]:
    """Fetch a media playlist's init (EXT-X-MAP) and every segment, concatenated into out_path.
    Returns (playlist text, segment URLs)."""
    text = playlist_text if playlist_text is not None else must_get(playlist_url).decode()
    segs = [resolve(playlist_url, u) for u in playlist_uris(text)]
    m = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
    with open(out_path, "wb") as f:
        if m:
            f.write(must_get(resolve(playlist_url, m.group(1))))
        for s in segs:
            f.write(must_get(s))
    return text, segs


def playlist_tag(text: str, tag: str) -> str | None:
    for ln in text.splitlines():
        if ln.startswith(tag + ":"):
            return ln.split(":", 1)[1]
    return None


def wait_for(cond, timeout: float, step: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def error_code(exc) -> str:
    return exc.response["Error"]["Code"]


def aws_get_clip(srv, stream: str, start: float, end: float, out_path: str,
                 ts_type: str = "PRODUCER_TIMESTAMP") -> subprocess.CompletedProcess:
    """/usr/bin/aws kinesis-video-archived-media get-clip (endpoint from get-data-endpoint)."""
    from .testing import aws_cli, aws_cli_env
    ep = json.loads(aws_cli(srv, "kinesisvideo", "get-data-endpoint", "--stream-name", stream,
                            "--api-name", "GET_CLIP").stdout)["DataEndpoint"]
    sel = json.dumps({"FragmentSelectorType": ts_type,
                      "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}})
    return subprocess.run(["/usr/bin/aws", "--endpoint-url", ep, "--output", "json",
                           "kinesis-video-archived-media", "get-clip", "--stream-name", stream,
                           "--clip-fragment-selector", sel, out_path],
                          env=aws_cli_env(srv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)


def pic_body(tracks: list[dict], n_fragments: int = 2, audio_frames: list[bytes] | None = None,
             audio_ms: int = 20) -> bytes:
    """A producer-SDK-layout (PIC) PutMedia body from the C producer's H.264 sample frames: one
    45-frame GOP (25 fps, 1.8 s) per fragment; if a second track is declared, ``audio_frames``
    (cycled; default opaque 41-byte frames) are interleaved every ``audio_ms`` ms."""
    from . import mkv, seed
    _cpd, gops = seed.sample_h264_gops(4)
    w = mkv.ProducerMkvWriter(tracks)
    out = [w.header()]
    audio = audio_frames or [b"\xfc" + bytes(40)]
    ai = 0
    for i in range(n_fragments):
        gop = gops[i % len(gops)]
        frames = [(k * 40, 0, 1, k == 0, f) for k, f in enumerate(gop)]
        if len(tracks) > 1:
            n = len(gop) * 40 // audio_ms
            frames += [(k * audio_ms, 1, 2, True, audio[(ai + k) % len(audio)]) for k in range(n)]
            ai += n
        frames.sort(key=lambda x: (x[0], x[1]))
        out.append(w.cluster(i * len(gop) * 40, [(tn, rel, key, data) for rel, _, tn, key, data in frames]))
    return b"".join(out)


def h264_sample_track() -> dict:
    from . import seed
    cpd, _ = seed.sample_h264_gops(1)
    return {"number": 1, "type": "video", "codec_id": "V_MPEG4/ISO/AVC", "codec_private": cpd,
            "width": 640, "height": 480}
