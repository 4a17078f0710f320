"""Media products of kvs-local: GetClip, HLS and DASH streaming sessions, GetImages.

The server calls ``handle_api`` (signed POST APIs) and ``handle_get`` (unsigned GETs under
/hls/v1/ and /dash/v1/, where the session token is the credential).  Packaging is done by
``media.py`` with ffmpeg.

Sessions live in memory: a server restart invalidates every HLS/DASH session URL (a player then
gets 403 and has to ask for a new URL, as with an expired real session).  The environment variable
KVS_LOCAL_SESSION_TTL_SCALE (default 1) scales session lifetimes, so tests can see expiry quickly.

Timeline of a session: the first fragment is placed at BIAS seconds; each next fragment follows the
previous one by the difference of their producer timestamps when the stream is contiguous there
(within 50 ms of the previous fragment's length), and directly after the previous fragment's media
otherwise, so gaps in the stream are closed and overlaps removed (the service also rewrites the
timeline so that players cope with gaps).  The per-fragment fMP4 made
by ffmpeg is cached under ``data_dir/media-cache`` and moved onto that timeline by rewriting its
tfdt when served, so successive fragments line up for players (decode times are continuous when
the stream is).  The small BIAS keeps the first decode time non-negative when the first sample
has a composition offset (B-frames).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import os
import secrets
import threading
from dataclasses import dataclass, field
from xml.sax.saxutils import escape as _xml_escape

from . import media
from .errors import KvsError, invalid_argument

BIAS_S = 10.0
GAP_TOLERANCE_S = 0.050
MAX_SESSIONS_PER_STREAM = 10
LIVE_RECENT_S = 30.0
CLIP_MAX_FRAGMENTS = 200
CLIP_MAX_BYTES = 100 * 1024 * 1024
DAY_S = 24 * 3600.0
NO_FRAGMENTS_MSG = "No fragments found in the stream for the streaming request."


def _ttl_scale() -> float:
    """KVS_LOCAL_SESSION_TTL_SCALE (test knob, default 1): session lifetimes are Expires * scale seconds,
    so a test can watch a 300-second session expire in 3 seconds with 0.01."""
    try:
        v = float(os.environ.get("KVS_LOCAL_SESSION_TTL_SCALE", "1"))
    except ValueError:
        return 1.0
    return v if v > 0 else 1.0

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Type, x-amzn-RequestId, x-amzn-ErrorType",
    "Access-Control-Max-Age": "86400",
}

TS_TYPES = ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP")


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------

def _err(status: int, type_: str, msg: str) -> KvsError:
    return KvsError(status, type_, msg)


def _num(body: dict, key: str, required: bool = False) -> float | None:
    v = body.get(key)
    if v is None:
        if required:
            raise invalid_argument(f"{key} is required.")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
        raise invalid_argument(f"{key} must be a number.")
    return float(v)


def _int(body: dict, key: str, default: int | None, lo: int, hi: int) -> int | None:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise invalid_argument(f"{key} must be an integer.")
    v = int(v)
    if not lo <= v <= hi:
        raise invalid_argument(f"1 validation error detected: Value '{v}' at '{key}' failed to satisfy "
                               f"constraint: Member must have value between {lo} and {hi}")
    return v


def _enum(body: dict, key: str, allowed: tuple, default):
    v = body.get(key)
    if v is None:
        return default
    if v not in allowed:
        raise invalid_argument(f"1 validation error detected: Value '{v}' at '{key}' failed to satisfy "
                               f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")
    return v


def _stream(ctx, body: dict):
    name = body.get("StreamName")
    arn = body.get("StreamARN")
    if not name and not arn:
        raise invalid_argument("Either StreamName or StreamARN must be specified.")
    if name and arn:
        # KVS accepts both when they agree
        s = ctx.store.get_stream(name=name)
        if s.arn != arn:
            raise invalid_argument("StreamName and StreamARN do not identify the same stream.")
        return s
    return ctx.store.get_stream(name=name) if name else ctx.store.get_stream(arn=arn)


def _key(fr, ts_type: str) -> float:
    return fr.producer_ts if ts_type == "PRODUCER_TIMESTAMP" else fr.server_ts


def _check_retention(stream) -> None:
    if stream.retention_hours <= 0:
        raise _err(400, "NoDataRetentionException",
                   f"The stream {stream.name} has no data retention; media cannot be retrieved.")


def _collapse_producer(frs: list, ts_type: str) -> list:
    """With PRODUCER_TIMESTAMP, fragments sharing a start time collapse to the highest number."""
    if ts_type != "PRODUCER_TIMESTAMP":
        return frs
    out: dict[float, object] = {}
    for f in frs:
        cur = out.get(f.producer_ts)
        if cur is None or (len(f.number), f.number) > (len(cur.number), cur.number):
            out[f.producer_ts] = f
    return sorted(out.values(), key=lambda f: (f.producer_ts, len(f.number), f.number))


def _iso(ts: float) -> str:
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def _iso_duration(s: float) -> str:
    return "PT%.3fS" % max(0.0, s)


class _Media:
    """Per-server media state: fragment cache and parsed-fragment cache."""

    def __init__(self, ctx):
        root = os.path.join(ctx.data_dir, "media-cache")
        self.cache = media.FragmentCache(root)
        self.tmp = os.path.join(root, "tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self._docs: dict[tuple, media.MkvDoc] = {}
        self._docs_order: list[tuple] = []
        self._lock = threading.Lock()

    def doc(self, ctx, stream, number: str) -> media.MkvDoc:
        k = (stream.arn, number)
        with self._lock:
            d = self._docs.get(k)
        if d is not None:
            return d
        try:
            d = media.parse_mkv(ctx.store.fragment_mkv(stream, number))
        except media.MkvError as e:
            raise _err(400, "InvalidMediaFrameException", f"Fragment {number} cannot be parsed: {e}")
        # CORE's stored track info is authoritative for codec data (it comes from the producer header)
        with self._lock:
            self._docs[k] = d
            self._docs_order.append(k)
            while len(self._docs_order) > 64:
                self._docs.pop(self._docs_order.pop(0), None)
        return d

    def fmp4(self, ctx, stream, number: str, track: int) -> media.Fmp4Part:
        def make():
            return media.make_fmp4(self.doc(ctx, stream, number), track)
        try:
            raw = self.cache.get_or_make(stream.arn, f"{number}.t{track}.mp4", make)
            return media.fmp4_part(self.doc(ctx, stream, number), track, raw)
        except media.MediaError as e:
            ctx.log.warning("fMP4 packaging of %s track %d failed: %s", number, track, e)
            raise _err(400, "InvalidMediaFrameException", f"Fragment {number} cannot be packaged.")


_MEDIA_LOCK = threading.Lock()
_MEDIAS: dict[str, _Media] = {}


def _m(ctx) -> _Media:
    """The media state of this server (one per data directory; ctx objects are per request)."""
    key = os.path.abspath(ctx.data_dir)
    with _MEDIA_LOCK:
        m = _MEDIAS.get(key)
        if m is None:
            m = _MEDIAS[key] = _Media(ctx)
        return m


# ----------------------------------------------------------------------------------------------
# API entry
# ----------------------------------------------------------------------------------------------

def handle_api(ctx, api: str, body_json: dict) -> tuple:
    body = body_json or {}
    if api == "GetClip":
        return _get_clip(ctx, body)
    if api == "GetHLSStreamingSessionURL":
        return _create_session(ctx, body, "HLS")
    if api == "GetDASHStreamingSessionURL":
        return _create_session(ctx, body, "DASH")
    if api == "GetImages":
        return _get_images(ctx, body)
    raise _err(400, "InvalidArgumentException", f"Unknown API {api}")


def _json(obj) -> tuple:
    return 200, {"Content-Type": "application/json"}, json.dumps(obj).encode()


# ----------------------------------------------------------------------------------------------
# GetClip
# ----------------------------------------------------------------------------------------------

def _selector(sel, key_name: str, need_range: bool, need_end: bool) -> tuple[str, float | None, float | None]:
    if sel is None:
        if need_range:
            raise invalid_argument(f"{key_name} is required.")
        return "SERVER_TIMESTAMP", None, None
    if not isinstance(sel, dict):
        raise invalid_argument(f"{key_name} must be an object.")
    ts_type = _enum(sel, "FragmentSelectorType", TS_TYPES, None if need_range else "SERVER_TIMESTAMP")
    if ts_type is None:
        raise invalid_argument("FragmentSelectorType is required.")
    rng = sel.get("TimestampRange")
    if rng is None:
        if need_range:
            raise invalid_argument("TimestampRange is required.")
        return ts_type, None, None
    start = _num(rng, "StartTimestamp", required=True)
    end = _num(rng, "EndTimestamp", required=need_end)
    if end is not None:
        if end < start:
            raise invalid_argument("EndTimestamp must be after StartTimestamp.")
        if end - start > DAY_S:
            raise invalid_argument("The time range between StartTimestamp and EndTimestamp "
                                   "must not exceed 24 hours.")
    return ts_type, start, end


def _check_fragment_codecs(ctx, stream, frs: list, allow_g711: bool) -> list[dict]:
    seen = {}
    first = None
    for f in frs:
        tracks = ctx.store.track_info(stream, f.number)
        sig = repr([(t.get("number"), t.get("codec_id"), bytes(t.get("codec_private") or b""))
                    for t in tracks])
        if sig in seen:
            continue
        seen[sig] = True
        media.check_tracks(tracks, allow_g711=allow_g711)
        if first is None:
            first = tracks
    return first or []


def _get_clip(ctx, body: dict) -> tuple:
    stream = _stream(ctx, body)
    sel = body.get("ClipFragmentSelector")
    ts_type, start, end = _selector(sel, "ClipFragmentSelector", True, True)
    _check_retention(stream)
    frs = ctx.store.fragments_in_range(stream, ts_type, start, end)
    if not frs:
        raise _err(404, "ResourceNotFoundException", "No fragments found in the stream for the clip request.")
    chosen = []
    total = 0
    for f in frs:
        if len(chosen) >= CLIP_MAX_FRAGMENTS:
            break
        if chosen and total + f.size > CLIP_MAX_BYTES:
            break
        chosen.append(f)
        total += f.size
    tracks = _check_fragment_codecs(ctx, stream, chosen, allow_g711=True)
    m = _m(ctx)
    chosen.sort(key=lambda f: (f.producer_ts, len(f.number), f.number))
    origin = chosen[0].producer_ts
    parts = []
    for f in chosen:
        try:
            doc = media.parse_mkv(ctx.store.fragment_mkv(stream, f.number))
        except media.MkvError as e:
            raise _err(400, "InvalidMediaFrameException", f"Fragment {f.number} cannot be parsed: {e}")
        parts.append((round((f.producer_ts - origin) * 1000), doc))
    # the producer header is authoritative for codec data; keep the parsed track layout otherwise
    clip_tracks = _merge_tracks(parts[0][1].tracks, tracks)
    try:
        path = media.make_clip(parts, clip_tracks, m.tmp)
    except (media.MediaError, media.MkvError) as e:
        ctx.log.warning("GetClip packaging failed: %s", e)
        raise _err(400, "InvalidMediaFrameException", "The media frames could not be packaged as MP4.")
    size = os.path.getsize(path)
    ctx.log.info("GetClip %s: %d fragments, %d bytes of fragments, %d bytes MP4",
                 stream.name, len(chosen), total, size)
    return 200, {"Content-Type": "video/mp4"}, _file_chunks(path)


def _merge_tracks(parsed: list[dict], stored: list[dict]) -> list[dict]:
    by_no = {t.get("number"): t for t in stored}
    out = []
    for t in parsed:
        s = by_no.get(t["number"], {})
        merged = dict(t)
        for k in ("codec_id", "codec_private", "width", "height", "sampling_frequency", "channels"):
            if s.get(k) and not merged.get(k):
                merged[k] = s[k]
        out.append(merged)
    return out


def _file_chunks(path: str, chunk: int = 1 << 20):
    try:
        with open(path, "rb") as f:
            while True:
                b = f.read(chunk)
                if not b:
                    break
                yield b
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------------------------
# Streaming sessions
# ----------------------------------------------------------------------------------------------

@dataclass
class Session:
    token: str
    kind: str                    # HLS | DASH
    stream_name: str
    stream_arn: str
    mode: str                    # LIVE | LIVE_REPLAY | ON_DEMAND
    ts_type: str
    start: float | None
    end: float | None
    container: str
    discontinuity: str
    display_ts: bool
    display_fn: bool
    max_results: int
    created: float
    expires: float
    tracks: list[dict] = field(default_factory=list)
    order: list = field(default_factory=list)          # Fragment objects in session order
    index: dict = field(default_factory=dict)          # number -> position in order
    origin: float | None = None                         # producer ts placed at BIAS
    origin_server: float | None = None
    offsets: dict = field(default_factory=dict)        # number -> seconds after BIAS on the session timeline
    extent_fn: object = None                           # Fragment -> (video start, video end) in s from its zero
    last_key: float | None = None
    revoked: bool = False
    init_cache: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, f) -> None:
        if f.number in self.index:
            return
        if not self.order:
            self.origin = f.producer_ts
            self.origin_server = f.server_ts
            off = 0.0
        else:
            prev = self.order[-1]
            delta = f.producer_ts - prev.producer_ts
            dur = prev.duration_ms / 1000.0
            if delta > 0 and abs(delta - dur) <= GAP_TOLERANCE_S:
                step = delta                     # contiguous: keep the producer's spacing exactly
            else:
                # a gap or an overlap: the next fragment's first video frame follows the previous
                # fragment's last video frame
                span = None
                if self.extent_fn is not None:
                    try:
                        span = self.extent_fn(prev)[1] - self.extent_fn(f)[0]
                    except Exception:            # noqa: BLE001 - fall back to the listed length
                        span = None
                step = span if span and span > 0 else (dur if dur > 0 else max(delta, 0.001))
                if delta > 0 and abs(delta - step) <= GAP_TOLERANCE_S:
                    step = delta
            off = self.offsets[prev.number] + step
        self.offsets[f.number] = off
        self.index[f.number] = len(self.order)
        self.order.append(f)

    def offset(self, f) -> float:
        return BIAS_S + self.offsets.get(f.number, 0.0)


_SESSIONS: dict[str, Session] = {}
_SESSIONS_LOCK = threading.Lock()


def _create_session(ctx, body: dict, kind: str) -> tuple:
    stream = _stream(ctx, body)
    mode = _enum(body, "PlaybackMode", ("LIVE", "LIVE_REPLAY", "ON_DEMAND"), "LIVE")
    sel_key = "HLSFragmentSelector" if kind == "HLS" else "DASHFragmentSelector"
    sel = body.get(sel_key)
    if mode == "LIVE":
        if isinstance(sel, dict) and sel.get("TimestampRange") is not None:
            raise invalid_argument("TimestampRange must not be specified when PlaybackMode is LIVE.")
        ts_type, start, end = _selector(sel, sel_key, False, False)
    else:
        ts_type, start, end = _selector(sel, sel_key, True, mode == "ON_DEMAND")
    expires = _int(body, "Expires", 300, 300, 43200)
    if kind == "HLS":
        container = _enum(body, "ContainerFormat", ("FRAGMENTED_MP4", "MPEG_TS"), "FRAGMENTED_MP4")
        disc = _enum(body, "DiscontinuityMode", ("ALWAYS", "NEVER", "ON_DISCONTINUITY"),
                     "ALWAYS" if ts_type == "SERVER_TIMESTAMP" else "NEVER")
        display_fn = False
        max_key = "MaxMediaPlaylistFragmentResults"
    else:
        container = "FRAGMENTED_MP4"
        disc = "NEVER"
        display_fn = _enum(body, "DisplayFragmentNumber", ("ALWAYS", "NEVER"), "NEVER") == "ALWAYS"
        max_key = "MaxManifestFragmentResults"
    display_ts = _enum(body, "DisplayFragmentTimestamp", ("ALWAYS", "NEVER"), "NEVER") == "ALWAYS"
    max_results = _int(body, max_key, 1000 if mode == "ON_DEMAND" else 5, 1, 5000)
    _check_retention(stream)
    now = ctx.now()

    if mode == "LIVE":
        latest = ctx.store.latest_fragment(stream)
        if latest is None or latest.server_ts < now - LIVE_RECENT_S:
            raise _err(404, "ResourceNotFoundException", NO_FRAGMENTS_MSG)
        first_frs = [latest]
    else:
        first_frs = ctx.store.fragments_in_range(stream, ts_type, start, end if end is not None else now + DAY_S)
        if not first_frs:
            raise _err(404, "ResourceNotFoundException", NO_FRAGMENTS_MSG)
    tracks = ctx.store.track_info(stream, first_frs[0].number)
    media.check_tracks(tracks, allow_g711=(kind == "DASH"))
    if kind == "HLS" and container == "MPEG_TS" and len(tracks) > 1 and \
            media.codec_kind(tracks[1].get("codec_id")) != "aac":
        raise _err(400, "UnsupportedStreamMediaTypeException", "MPEG_TS supports AAC audio only.")

    token = "Ci" + secrets.token_urlsafe(48) + "~"
    sess = Session(token=token, kind=kind, stream_name=stream.name, stream_arn=stream.arn, mode=mode,
                   ts_type=ts_type, start=start, end=end, container=container, discontinuity=disc,
                   display_ts=display_ts, display_fn=display_fn, max_results=max_results, created=now,
                   expires=now + expires * _ttl_scale(), tracks=tracks)
    m = _m(ctx)
    sess.extent_fn = lambda fr: tuple(x / 1000.0 for x in media.video_extent_ms(m.doc(ctx, stream, fr.number)))
    if mode == "ON_DEMAND":
        for f in _collapse_producer(first_frs, ts_type)[:max_results]:
            sess.add(f)
    with _SESSIONS_LOCK:
        # drop expired sessions, then enforce the per-stream limit (the oldest active one is revoked)
        for t in [t for t, s in _SESSIONS.items() if s.expires < now - 3600]:
            del _SESSIONS[t]
        active = sorted((s for s in _SESSIONS.values()
                         if s.stream_arn == stream.arn and s.kind == kind and not s.revoked and s.expires > now),
                        key=lambda s: s.created)
        while len(active) >= MAX_SESSIONS_PER_STREAM:
            active.pop(0).revoked = True
        _SESSIONS[token] = sess
    if mode != "ON_DEMAND":
        _refresh(ctx, sess, stream)
    if kind == "HLS":
        url = f"{ctx.base_url}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}"
        return _json({"HLSStreamingSessionURL": url})
    url = f"{ctx.base_url}/dash/v1/getDASHManifest.mpd?SessionToken={token}"
    return _json({"DASHStreamingSessionURL": url})


def _refresh(ctx, sess: Session, stream) -> None:
    """Bring a LIVE / LIVE_REPLAY session's fragment list up to date (never back-fills)."""
    if sess.mode == "ON_DEMAND":
        return
    now = ctx.now()
    with sess.lock:
        if sess.mode == "LIVE":
            recent = ctx.store.fragments_in_range(stream, "SERVER_TIMESTAMP", now - 300.0, now + 3600.0)
            recent = _collapse_producer(sorted(recent, key=lambda f: (_key(f, sess.ts_type), len(f.number), f.number)),
                                        sess.ts_type)
            if sess.last_key is None:
                new = recent[-sess.max_results:]
            else:
                new = [f for f in recent if _key(f, sess.ts_type) > sess.last_key and f.number not in sess.index]
        else:  # LIVE_REPLAY: from Start, each fragment once its time has come
            hi = sess.end if sess.end is not None else now + 3600.0
            frs = _collapse_producer(ctx.store.fragments_in_range(stream, sess.ts_type, sess.start, hi),
                                     sess.ts_type)
            elapsed = now - sess.created
            first_key = _key(frs[0], sess.ts_type) if frs else 0.0
            new = [f for f in frs if f.number not in sess.index
                   and (sess.last_key is None or _key(f, sess.ts_type) > sess.last_key)
                   and _key(f, sess.ts_type) - first_key <= elapsed]
        for f in new:
            sess.add(f)
            sess.last_key = _key(f, sess.ts_type)


def _replay_done(ctx, sess: Session, stream) -> bool:
    if sess.mode != "LIVE_REPLAY" or sess.end is None:
        return False
    frs = _collapse_producer(ctx.store.fragments_in_range(stream, sess.ts_type, sess.start, sess.end), sess.ts_type)
    return all(f.number in sess.index for f in frs)


def _window(sess: Session) -> tuple[int, list]:
    """(media sequence of the first listed fragment, fragments listed now)."""
    if sess.mode == "ON_DEMAND":
        return 0, list(sess.order)
    first = max(0, len(sess.order) - sess.max_results)
    return first, sess.order[first:]


# ----------------------------------------------------------------------------------------------
# GET resources
# ----------------------------------------------------------------------------------------------

def _resp(status: int, ctype: str, body: bytes, extra: dict | None = None) -> tuple:
    h = {"Content-Type": ctype, "Cache-Control": "no-cache"}
    h.update(CORS_HEADERS)
    if extra:
        h.update(extra)
    return status, h, body


def _err_resp(e: KvsError) -> tuple:
    body = json.dumps({"Message": e.message, "__type": e.type_}).encode()
    return _resp(e.status, "application/json", body, {"x-amzn-ErrorType": e.type_})


def handle_get(ctx, path: str, query: dict, method: str | None = None) -> tuple:
    method = method or getattr(ctx, "method", "GET") or "GET"
    if method == "OPTIONS":
        return 204, dict(CORS_HEADERS), b""
    try:
        return _handle_get(ctx, path, query or {})
    except KvsError as e:
        return _err_resp(e)


def _session_for(ctx, query: dict, kind: str) -> Session:
    token = query.get("SessionToken")
    if not token:
        raise _err(400, "InvalidArgumentException", "SessionToken is required.")
    with _SESSIONS_LOCK:
        sess = _SESSIONS.get(token)
    if sess is None or sess.kind != kind:
        raise _err(403, "NotAuthorizedException", "Streaming session token is not valid.")
    if sess.revoked:
        raise _err(403, "NotAuthorizedException",
                   "Streaming session token is revoked: too many active sessions for the stream.")
    if ctx.now() >= sess.expires:
        raise _err(403, "NotAuthorizedException", "Streaming session token is expired")
    return sess


def _track_no(query: dict, sess: Session) -> int:
    tn = query.get("TrackNumber", "1")
    try:
        n = int(tn)
    except ValueError:
        raise invalid_argument("TrackNumber must be an integer.")
    if n not in [t.get("number") for t in sess.tracks] and not (1 <= n <= len(sess.tracks)):
        raise _err(404, "ResourceNotFoundException", f"Track {n} not found in the stream.")
    return n


def _track_by_no(sess: Session, n: int) -> dict:
    for t in sess.tracks:
        if t.get("number") == n:
            return t
    return sorted(sess.tracks, key=lambda t: t.get("number", 0))[n - 1]


def _handle_get(ctx, path: str, query: dict) -> tuple:
    name = path.rsplit("/", 1)[-1]
    if path.startswith("/hls/v1/"):
        sess = _session_for(ctx, query, "HLS")
    elif path.startswith("/dash/v1/"):
        sess = _session_for(ctx, query, "DASH")
    else:
        raise _err(404, "ResourceNotFoundException", "Unknown resource.")
    stream = ctx.store.get_stream(arn=sess.stream_arn)
    if name == "getHLSMasterPlaylist.m3u8" and sess.kind == "HLS":
        _refresh(ctx, sess, stream)
        return _resp(200, "application/x-mpegURL", _hls_master(ctx, sess, stream).encode())
    if name == "getHLSMediaPlaylist.m3u8" and sess.kind == "HLS":
        _refresh(ctx, sess, stream)
        tn = None if sess.container == "MPEG_TS" else _track_no(query, sess)
        return _resp(200, "application/x-mpegURL", _hls_media(ctx, sess, stream, tn).encode())
    if name == "getDASHManifest.mpd" and sess.kind == "DASH":
        _refresh(ctx, sess, stream)
        return _resp(200, "application/dash+xml", _dash_mpd(ctx, sess, stream).encode())
    if name == "getMP4InitFragment.mp4":
        tn = _track_no(query, sess)
        return _resp(200, "video/mp4", _init_fragment(ctx, sess, stream, tn))
    if name == "getMP4MediaFragment.mp4":
        tn = _track_no(query, sess)
        f = _fragment_for(sess, query, ctx, stream)
        part = _m(ctx).fmp4(ctx, stream, f.number, tn)
        start = round(sess.offset(f) * part.timescale)
        return _resp(200, "video/mp4", part.placed(start))
    if name == "getTSFragment.ts" and sess.kind == "HLS":
        f = _fragment_for(sess, query, ctx, stream)
        m = _m(ctx)
        doc = m.doc(ctx, stream, f.number)
        off = sess.offset(f)
        key = f"{f.number}.ts{round(off * 1000)}.ts"
        try:
            data = m.cache.get_or_make(stream.arn, key, lambda: media.make_ts(doc, off))
        except media.MediaError:
            raise _err(400, "InvalidMediaFrameException", f"Fragment {f.number} cannot be packaged.")
        return _resp(200, "video/MP2T", data)
    raise _err(404, "ResourceNotFoundException", "Unknown resource.")


def _fragment_for(sess: Session, query: dict, ctx=None, stream=None):
    try:
        return _lookup_fragment(sess, query)
    except KvsError as e:
        if e.status != 404 or sess.mode == "ON_DEMAND" or ctx is None:
            raise
    # a live client may ask for the next fragment before it has re-read the playlist/manifest
    _refresh(ctx, sess, stream)
    try:
        return _lookup_fragment(sess, query)
    except KvsError:
        ctx.log.info("%s session: fragment %s (track %s) is not (yet) in the session (%d listed)", sess.kind,
                     query.get("FragmentNumber") or "sequence " + str(query.get("SequenceNumber")),
                     query.get("TrackNumber"), len(sess.order))
        raise


def _lookup_fragment(sess: Session, query: dict):
    fn = query.get("FragmentNumber")
    sn = query.get("SequenceNumber")
    with sess.lock:
        if fn is not None:
            i = sess.index.get(fn)
        elif sn is not None:
            try:
                i = int(sn) - 1          # DASH $Number$ is 1-based (startNumber defaults to 1)
            except ValueError:
                raise invalid_argument("SequenceNumber must be an integer.")
            if not 0 <= i < len(sess.order):
                i = None
        else:
            raise invalid_argument("FragmentNumber is required.")
        if i is None:
            raise _err(404, "ResourceNotFoundException", "The requested fragment is not part of this session.")
        return sess.order[i]


def _init_fragment(ctx, sess: Session, stream, tn: int) -> bytes:
    with sess.lock:
        cached = sess.init_cache.get(tn)
        first = sess.order[0] if sess.order else None
    if cached is not None:
        return cached
    if first is None:
        raise _err(404, "ResourceNotFoundException", NO_FRAGMENTS_MSG)
    init = _m(ctx).fmp4(ctx, stream, first.number, tn).init
    with sess.lock:
        sess.init_cache[tn] = init
    return init


def _bandwidth(frs: list) -> int:
    best = 0
    for f in frs:
        if f.duration_ms > 0:
            best = max(best, int(f.size * 8 * 1000 / f.duration_ms))
    return best or 1_000_000


def _qs(sess: Session, **kv) -> str:
    parts = [f"SessionToken={sess.token}"] + [f"{k}={v}" for k, v in kv.items()]
    return "&".join(parts)


def _video_facts(ctx, sess: Session, stream, video: dict) -> tuple[tuple[int, int] | None, float | None]:
    """(resolution, frame rate) of the session's video as packaged (from the first fragment's fMP4)."""
    with sess.lock:
        first = sess.order[0] if sess.order else None
    size = None
    rate = None
    if first is not None:
        try:
            part = _m(ctx).fmp4(ctx, stream, first.number, video.get("number", 1))
            size = media.visual_size(part.init)
            n = media.fmp4_sample_count(part.media)
            if part.duration > 0 and n > 1:
                rate = n * part.timescale / part.duration
        except KvsError:
            pass
    if size is None and video.get("width") and video.get("height"):
        size = (int(video["width"]), int(video["height"]))
    if rate is None and video.get("default_duration_ns"):
        rate = 1e9 / video["default_duration_ns"]
    return size, rate


def _hls_master(ctx, sess: Session, stream) -> str:
    tracks = sorted(sess.tracks, key=lambda t: t.get("number", 0))
    video = tracks[0]
    audio = tracks[1] if len(tracks) > 1 else None
    with sess.lock:
        frs = list(sess.order[-20:])
    codecs = [media.rfc6381_codec(video)] + ([media.rfc6381_codec(audio)] if audio else [])
    attrs = [f'CODECS="{",".join(codecs)}"']
    size, rate = _video_facts(ctx, sess, stream, video)
    if size:
        attrs.append(f"RESOLUTION={size[0]}x{size[1]}")
    if rate:
        attrs.append("FRAME-RATE=%.2f" % rate)
    attrs.append(f"BANDWIDTH={_bandwidth(frs)}")
    lines = ["#EXTM3U"]
    if sess.container == "MPEG_TS":
        lines.append("#EXT-X-VERSION:3")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append("getHLSMediaPlaylist.m3u8?" + _qs(sess))
        return "\n".join(lines) + "\n"
    lines += ["#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio:
        ch = int(audio.get("channels") or 1)
        lines.append('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,'
                     f'CHANNELS="{ch}",URI="getHLSMediaPlaylist.m3u8?{_qs(sess, TrackNumber=audio["number"])}"')
        attrs.append('AUDIO="audio"')
    lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
    lines.append("getHLSMediaPlaylist.m3u8?" + _qs(sess, TrackNumber=video.get("number", 1)))
    return "\n".join(lines) + "\n"


def _is_discontinuous(prev, cur) -> bool:
    if prev is None:
        return True
    expected = prev.producer_ts + prev.duration_ms / 1000.0
    return abs(cur.producer_ts - expected) > 0.050


def _hls_media(ctx, sess: Session, stream, tn: int | None) -> str:
    with sess.lock:
        seq, frs = _window(sess)
        prev_all = sess.order[:seq]
        before = sess.order[seq - 1] if seq > 0 else None
    ended = sess.mode == "ON_DEMAND" or _replay_done(ctx, sess, stream)
    if sess.discontinuity == "ALWAYS":
        disc_seq = seq
    elif sess.discontinuity == "ON_DISCONTINUITY":
        disc_seq = sum(1 for a, b in zip([None] + prev_all[:-1], prev_all) if a is not None and _is_discontinuous(a, b))
    else:
        disc_seq = 0
    target = max([1] + [math.ceil(f.duration_ms / 1000.0 - 1e-9) for f in frs])
    lines = ["#EXTM3U", "#EXT-X-VERSION:7" if tn is not None else "#EXT-X-VERSION:3",
             f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{seq}"]
    if disc_seq:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}")
    if sess.mode == "ON_DEMAND":
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    if tn is not None:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        lines.append(f'#EXT-X-MAP:URI="getMP4InitFragment.mp4?{_qs(sess, TrackNumber=tn)}"')
    prev = before
    for f in frs:
        if sess.discontinuity == "ALWAYS" or (sess.discontinuity == "ON_DISCONTINUITY" and prev is not None
                                               and _is_discontinuous(prev, f)):
            lines.append("#EXT-X-DISCONTINUITY")
        if sess.display_ts:
            lines.append("#EXT-X-PROGRAM-DATE-TIME:" + _iso(_key(f, sess.ts_type)))
        lines.append("#EXTINF:%.3f," % (f.duration_ms / 1000.0))
        if tn is None:
            lines.append("getTSFragment.ts?" + f"FragmentNumber={f.number}&SessionToken={sess.token}")
        else:
            lines.append("getMP4MediaFragment.mp4?" + f"FragmentNumber={f.number}&SessionToken={sess.token}"
                         f"&TrackNumber={tn}")
        prev = f
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _dash_mpd(ctx, sess: Session, stream) -> str:
    with sess.lock:
        seq, frs = _window(sess)
    if not frs:
        raise _err(404, "ResourceNotFoundException", NO_FRAGMENTS_MSG)
    ended = sess.mode == "ON_DEMAND" or _replay_done(ctx, sess, stream)
    tracks = sorted(sess.tracks, key=lambda t: t.get("number", 0))
    m = _m(ctx)
    total = (sess.offset(frs[-1]) - sess.offset(frs[0])) + frs[-1].duration_ms / 1000.0
    first_off = sess.offset(frs[0]) - BIAS_S
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    common = ('xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:kvs="https://kinesisvideo.amazonaws.com/ns/dash" '
              'profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2.000S"')
    if ended:
        out.append(f'<MPD {common} type="static" mediaPresentationDuration="{_iso_duration(first_off + total)}">')
    else:
        ast = (sess.origin_server if sess.origin_server is not None else sess.created)
        out.append(f'<MPD {common} type="dynamic" availabilityStartTime="{_iso(ast)}" '
                   f'publishTime="{_iso(ctx.now())}" minimumUpdatePeriod="PT2.000S" '
                   f'timeShiftBufferDepth="{_iso_duration(max(total, 10.0) + 10.0)}" '
                   f'suggestedPresentationDelay="PT3.000S">')
    out.append('  <Period id="0" start="PT0.000S">')
    for idx, t in enumerate(tracks):
        tn = t.get("number", idx + 1)
        part = m.fmp4(ctx, stream, frs[0].number, tn)
        ts = part.timescale
        is_video = t.get("type") == "video"
        codec = media.rfc6381_codec(t)
        if media.codec_kind(t.get("codec_id")) == "g711":
            codec = "mp4a.40.2"      # G.711 is delivered as AAC in fMP4
        out.append(f'    <AdaptationSet id="{idx}" contentType="{"video" if is_video else "audio"}" '
                   f'mimeType="{"video/mp4" if is_video else "audio/mp4"}" segmentAlignment="true" startWithSAP="1">')
        rep = f'      <Representation id="{tn}" codecs="{codec}" bandwidth="{_bandwidth(frs)}"'
        size = media.visual_size(part.init) if is_video else None
        if is_video and not size and t.get("width") and t.get("height"):
            size = (int(t["width"]), int(t["height"]))
        if size:
            rep += f' width="{size[0]}" height="{size[1]}"'
        if not is_video and t.get("sampling_frequency"):
            rep += f' audioSamplingRate="{int(t["sampling_frequency"])}"'
        out.append(rep + ">")
        init_url = _xml_escape(f"getMP4InitFragment.mp4?{_qs(sess, TrackNumber=tn)}")
        media_url = _xml_escape(f"getMP4MediaFragment.mp4?{_qs(sess, TrackNumber=tn)}&SequenceNumber=$Number$")
        out.append(f'        <SegmentTemplate timescale="{ts}" presentationTimeOffset="{round(BIAS_S * ts)}" '
                   f'startNumber="{seq + 1}" initialization="{init_url}" media="{media_url}">')
        out.append("          <SegmentTimeline>")
        for i, f in enumerate(frs):
            t0 = round(sess.offset(f) * ts)
            if i + 1 < len(frs):
                d = round(sess.offset(frs[i + 1]) * ts) - t0
            else:
                d = round(f.duration_ms / 1000.0 * ts)
            attrs = f't="{t0}" d="{max(1, d)}"'
            if sess.display_fn:
                attrs += f' kvs:fn="{f.number}"'
            if sess.display_ts:
                attrs += f' kvs:ts="{_key(f, sess.ts_type):.3f}"'
            out.append(f"            <S {attrs}/>")
        out.append("          </SegmentTimeline>")
        out.append("        </SegmentTemplate>")
        out.append("      </Representation>")
        out.append("    </AdaptationSet>")
    out.append("  </Period>")
    out.append("</MPD>")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# GetImages
# ----------------------------------------------------------------------------------------------

IMAGES_MAX_SPAN_S = 300.0
IMAGES_PAGE_MAX = 25          # the newer model: "a MaxResults greater than 25 gives pages of 25"
_TOKEN_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _images_request(body: dict) -> dict:
    """Validates a GetImages request as the service does (kvs-api.md 2.6).  Where the documents
    disagree we are lenient: SamplingInterval is optional (default 3000) with the newer model's
    minimum of 200 ms and no maximum (the older model said 3000..20000); WidthPixels or HeightPixels
    alone keeps the source's aspect ratio (one doc sentence says so, another calls it a validation
    error)."""
    ts_type = _enum(body, "ImageSelectorType", TS_TYPES, None)
    if ts_type is None:
        raise invalid_argument("1 validation error detected: Value null at 'imageSelectorType' failed to "
                               "satisfy constraint: Member must not be null")
    start = _num(body, "StartTimestamp", required=True)
    end = _num(body, "EndTimestamp", required=True)
    if start < 0 or end < 0:
        raise invalid_argument("StartTimestamp and EndTimestamp must not be negative.")
    if end < start:
        raise invalid_argument("EndTimestamp must be after StartTimestamp.")
    if end - start > IMAGES_MAX_SPAN_S:
        raise invalid_argument("The time range between StartTimestamp and EndTimestamp must not exceed "
                               "300 seconds.")
    interval = _int(body, "SamplingInterval", 3000, 200, 2**31 - 1)
    fmt = _enum(body, "Format", ("JPEG", "PNG"), None)
    if fmt is None:
        raise invalid_argument("1 validation error detected: Value null at 'format' failed to satisfy "
                               "constraint: Member must not be null")
    quality = 80
    fc = body.get("FormatConfig")
    if fc is not None:
        if not isinstance(fc, dict) or set(fc) - {"JPEGQuality"}:
            raise invalid_argument("FormatConfig accepts only the key JPEGQuality.")
        if "JPEGQuality" in fc:
            v = fc["JPEGQuality"]
            if not isinstance(v, str) or not v.isdigit() or not 1 <= int(v) <= 100:
                raise invalid_argument("JPEGQuality must be an integer between 1 and 100.")
            quality = int(v)
    width = _int(body, "WidthPixels", None, 1, 3840)
    height = _int(body, "HeightPixels", None, 1, 2160)
    max_results = _int(body, "MaxResults", IMAGES_PAGE_MAX, 1, 100)
    first = 0
    tok = body.get("NextToken")
    if tok is not None:
        bad = not isinstance(tok, str) or not 1 <= len(tok) <= 4096 or \
            not set(tok.rstrip("=")) <= _TOKEN_CHARS or len(tok) - len(tok.rstrip("=")) > 2
        try:
            if bad:
                raise ValueError("token shape")
            st = json.loads(base64.b64decode(tok, validate=True))
            first = int(st["i"])
            if (st.get("s"), st.get("e"), st.get("v"), st.get("t")) != (start, end, interval, ts_type) \
                    or first < 1:
                raise ValueError("token does not match the request")
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise invalid_argument("NextToken is not valid for this request.")
    return dict(ts_type=ts_type, start=start, end=end, interval=interval, fmt=fmt, quality=quality,
                width=width, height=height, page=min(max_results, IMAGES_PAGE_MAX), first=first)


def _get_images(ctx, body: dict) -> tuple:
    stream = _stream(ctx, body)
    r = _images_request(body)
    _check_retention(stream)
    ts_type, start, end = r["ts_type"], r["start"], r["end"]
    step = r["interval"] / 1000.0
    count = int(math.floor((end - start) / step + 1e-9)) + 1
    first = r["first"]
    if first >= count:
        raise invalid_argument("NextToken is not valid for this request.")
    times = [round(start + i * step, 3) for i in range(first, min(count, first + r["page"]))]
    frs = ctx.store.fragments_in_range(stream, ts_type, start - 120.0, end)
    frs = _collapse_producer(frs, ts_type)
    m = _m(ctx)
    images = []
    for t in times:
        f = None
        for cand in frs:
            k = _key(cand, ts_type)
            if k <= t + 1e-6 and t < k + max(cand.duration_ms, 1) / 1000.0:
                f = cand
        if f is None:
            images.append({"TimeStamp": t, "Error": "NO_MEDIA"})
            continue
        try:
            tracks = ctx.store.track_info(stream, f.number)
            if media.codec_kind(tracks[0].get("codec_id")) not in ("h264", "h265") if tracks else True:
                raise media.MediaError("unsupported codec")
            doc = m.doc(ctx, stream, f.number)
            img = media.extract_image(doc, t - _key(f, ts_type), r["fmt"], r["width"], r["height"],
                                      r["quality"])
            if not img:
                raise media.MediaError("no frame")
            images.append({"TimeStamp": t, "ImageContent": base64.b64encode(img).decode("ascii")})
        except (media.MediaError, media.MkvError, KvsError) as e:
            ctx.log.info("GetImages: no image at %s: %s", t, e)
            images.append({"TimeStamp": t, "Error": "MEDIA_ERROR"})
    nxt = first + len(times)
    out = {"Images": images}
    if nxt < count:
        tok = {"i": nxt, "s": start, "e": end, "v": r["interval"], "t": ts_type}
        out["NextToken"] = base64.b64encode(json.dumps(tok).encode()).decode()
    return _json(out)


def session_count() -> int:
    """Number of sessions held in memory (for diagnostics)."""
    with _SESSIONS_LOCK:
        return len(_SESSIONS)
