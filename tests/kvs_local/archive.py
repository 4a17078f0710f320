"""Archived-media APIs owned by CORE: ListFragments, GetMediaForFragmentList, and GetMedia."""
from __future__ import annotations

import base64
import json
import random
import re
import time

from . import mkv
from .control import resolve
from .errors import KvsError, invalid_argument

FRAG_RE = re.compile(r"^[0-9]{1,128}$")
TS_TYPES = ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP")


def _ts(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise invalid_argument(f"{what} must be a timestamp.")
    return float(v)


def parse_selector(sel, name="FragmentSelector"):
    if not isinstance(sel, dict):
        raise invalid_argument(f"{name} must be an object.")
    t = sel.get("FragmentSelectorType")
    if t not in TS_TYPES:
        raise invalid_argument(f"1 validation error detected: Value '{t}' at '{name[0].lower() + name[1:]}."
                               "fragmentSelectorType' failed to satisfy constraint: Member must satisfy enum value "
                               "set: [PRODUCER_TIMESTAMP, SERVER_TIMESTAMP]")
    rng = sel.get("TimestampRange")
    if not isinstance(rng, dict) or "StartTimestamp" not in rng or "EndTimestamp" not in rng:
        raise invalid_argument("TimestampRange with StartTimestamp and EndTimestamp is required.")
    start = _ts(rng["StartTimestamp"], "StartTimestamp")
    end = _ts(rng["EndTimestamp"], "EndTimestamp")
    if end < start:
        raise invalid_argument("EndTimestamp must be after StartTimestamp.")
    return t, start, end


def list_fragments(ctx, body):
    s = resolve(ctx, body)
    maxr = body.get("MaxResults", 100)
    if isinstance(maxr, bool) or not isinstance(maxr, int) or not (1 <= maxr <= 1000):
        raise invalid_argument(f"1 validation error detected: Value '{maxr}' at 'maxResults' failed to satisfy "
                               "constraint: Member must have value between 1 and 1000")
    token = body.get("NextToken")
    if token is not None:
        try:
            st = json.loads(base64.b64decode(token, validate=True))
            ts_type, start, end, after, uid = st["t"], st["a"], st["b"], st["p"], st["u"]
        except Exception:
            raise invalid_argument("Invalid NextToken.")
        if uid != s.uid:
            raise invalid_argument("The NextToken does not belong to this stream.")
    else:
        after = 0
        ts_type, start, end = None, 0.0, 0.0
        if body.get("FragmentSelector") is not None:
            ts_type, start, end = parse_selector(body["FragmentSelector"])
    frags, last = ctx.store.page_fragments(s, ts_type, start, end, after, maxr)
    if not ctx.config.sort_fragments:
        random.shuffle(frags)
    nt = None
    if last is not None:
        nt = base64.b64encode(json.dumps({"t": ts_type, "a": start, "b": end, "p": last, "u": s.uid},
                                         separators=(",", ":")).encode()).decode()
    out = [f.as_json() for f in frags]
    skew = getattr(ctx.config, "fragment_size_skew", 0)
    if skew:  # test switch: FragmentSizeInBytes that does not follow kvs-local's own rule
        for d in out:
            d["FragmentSizeInBytes"] = max(0, d["FragmentSizeInBytes"] + skew)
    return {"Fragments": out, "NextToken": nt}


def error_chunk(number: str, code: int, message: str) -> bytes:
    """Chunk for a fragment that cannot be returned: EBML header + Segment + KVS Tags with the
    fragment number and the exception tags (botocore model names)."""
    return mkv.fragment_document(mkv.ebml_header_bytes(), b"", [
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number),
        ("AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE", str(code)),
        ("AWS_KINESISVIDEO_EXCEPTION_MESSAGE", message)], b"")


def get_media_for_fragment_list(ctx, body):
    s = resolve(ctx, body)
    frs = body.get("Fragments")
    if not isinstance(frs, list) or not frs:
        raise invalid_argument("1 validation error detected: Value null at 'fragments' failed to satisfy "
                               "constraint: Member must not be null")
    if len(frs) > 1000:
        raise invalid_argument("1 validation error detected: Value at 'fragments' failed to satisfy constraint: "
                               "Member must have length less than or equal to 1000")
    for f in frs:
        if not isinstance(f, str) or not FRAG_RE.match(f):
            raise invalid_argument(f"Invalid fragment number: {f!r}")
    store = ctx.store
    ctx.server.record_batch(len(frs))

    def gen():
        for num in frs:
            try:
                yield store.fragment_mkv(s, num)
            except KvsError:
                yield error_chunk(num, 4000, f"Fragment {num} was not found in stream {s.name}.")
    return 200, {"Content-Type": "video/webm"}, gen()


# ------------------------------------------------------------------ GetMedia
def get_media(ctx, body):
    s = resolve(ctx, body)
    sel = body.get("StartSelector")
    if not isinstance(sel, dict):
        raise invalid_argument("StartSelector is required.")
    t = sel.get("StartSelectorType")
    store = ctx.store
    if t == "EARLIEST":
        after = 0
    elif t == "NOW":
        last = store.latest_fragment(s)  # start with the next fragment that arrives
        after = store.fragment_seq(s, last.number) if last else 0
    elif t in ("FRAGMENT_NUMBER", "CONTINUATION_TOKEN"):
        key = "AfterFragmentNumber" if t == "FRAGMENT_NUMBER" else "ContinuationToken"
        num = sel.get(key)
        if not isinstance(num, str) or not FRAG_RE.match(num):
            raise invalid_argument(f"{key} is required for StartSelectorType {t}.")
        seq = store.fragment_seq(s, num)
        if seq is None:
            raise KvsError(404, "ResourceNotFoundException", f"Fragment {num} not found.")
        after = seq
    elif t in TS_TYPES:
        ts = _ts(sel.get("StartTimestamp"), "StartTimestamp")
        frs = store.fragments_in_range(s, t, 0, ts)
        # chunk containing StartTimestamp: the last fragment that starts at or before it, else the next one
        after = 0
        if frs:
            after = store.fragment_seq(s, frs[-1].number) - 1
        else:
            nxt = store.fragments_in_range(s, t, ts, 1e13)
            after = store.fragment_seq(s, nxt[0].number) - 1 if nxt else 1 << 62
    else:
        raise invalid_argument(f"Invalid StartSelectorType: {t}")
    idle_limit = ctx.config.getmedia_idle_seconds

    def gen():
        cur = after
        idle_since = time.monotonic()
        while True:
            batch = store.fragments_after(s, cur, 50)
            if not batch:
                if time.monotonic() - idle_since > idle_limit:
                    return
                time.sleep(0.2)
                continue
            idle_since = time.monotonic()
            for seq, fr in batch:
                cur = seq
                latest = store.latest_fragment(s)
                behind = int(max(0.0, ((latest.server_ts if latest else fr.server_ts) - fr.server_ts)) * 1000)
                yield store.fragment_mkv(s, fr.number, trailer_pairs=[
                    ("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", str(behind)),
                    ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", fr.number)])
    return 200, {"Content-Type": "video/webm"}, gen()


HANDLERS = {"ListFragments": list_fragments, "GetMediaForFragmentList": get_media_for_fragment_list,
            "GetMedia": get_media}
