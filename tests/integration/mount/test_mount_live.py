"""kvsfs mounted on kvs-local: live.m3u8 / live.mpd and their playback sessions.

stat and readdirplus never wait long for a session (a stat at most ~2 s from the start of the
creation, a listing not at all), one creation per session is in flight at a time (single flight),
and an open always gets the exact, complete document (docs/SEMANTICS.md, "Live playlists").
"""
import errno
import os
import re
import stat
import threading
import time
import urllib.request

import pytest

from kvs_local.testing import boto3_client, retry_throttled

UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1


def api_count(counters, api, stream=None):
    c = counters.get(api)
    if not c:
        return 0
    return c["streams"].get(stream, 0) if stream else c["total"]


@pytest.fixture
def data_endpoints(kvs):
    """Sets kvs-local's data_endpoints switch; always switched off again at the end."""
    def set_(mapping):
        kvs.config(data_endpoints=mapping)
    yield set_
    kvs.config(data_endpoints={})


@pytest.fixture
def faults(kvs):
    yield kvs.faults
    kvs.clear_faults()


def recent_stream(kvs, name):
    """A stream with fragments that arrived just now, so LIVE sessions work for ~30 s, and that
    gets no new fragment (its playlist stays the same)."""
    kvs.create_stream(name, retention_hours=2)
    kvs.seed_testsrc(name, duration=4, start_ts=time.time() - 4)


def stat_all_at_once(path, n=8):
    """n threads stat path at the same moment; returns their results (st_size or OSError)."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait()
        try:
            out[i] = os.stat(path).st_size
        except OSError as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def absolutize_hls(doc, base):
    """The rewrite kvsfs documents: URI lines and URI="..." attributes made absolute."""
    out = []
    for line in doc.splitlines():
        if line and not line.startswith("#"):
            line = line if re.match(r"https?://", line) else base + line
        else:
            line = re.sub(r'URI="(?!https?://)([^"]*)"', lambda m: f'URI="{base}{m.group(1)}"', line)
        out.append(line + "\n")
    return "".join(out)


def test_data_endpoints_switch_leaves_normal_behaviour_alone(kvs, data_endpoints):
    kv = boto3_client(kvs, "kinesisvideo")
    kvs.create_stream("switch-cam", retention_hours=1)
    apis = ["GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "LIST_FRAGMENTS",
            "GET_MEDIA_FOR_FRAGMENT_LIST", "GET_CLIP"]

    def endpoints():
        return {a: retry_throttled(kv.get_data_endpoint, StreamName="switch-cam",
                                   APIName=a)["DataEndpoint"] for a in apis}

    assert set(endpoints().values()) == {kvs.url}
    data_endpoints({"GET_HLS_STREAMING_SESSION_URL": UNREACHABLE})
    got = endpoints()
    assert got.pop("GET_HLS_STREAMING_SESSION_URL") == UNREACHABLE
    assert set(got.values()) == {kvs.url}
    data_endpoints({"*": UNREACHABLE})
    assert set(endpoints().values()) == {UNREACHABLE}
    data_endpoints({})
    assert set(endpoints().values()) == {kvs.url}
    # validation is unchanged
    with pytest.raises(kv.exceptions.ClientError) as e:
        retry_throttled(kv.get_data_endpoint, StreamName="switch-cam", APIName="NOPE")
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"


def test_ls_la_with_an_unreachable_data_endpoint_returns_fast(kvs, mount, data_endpoints):
    kvs.create_stream("far-cam", retention_hours=2)
    data_endpoints({"*": UNREACHABLE})
    m = mount(kvs)
    m.expect_log(r"far-cam: (HLS|DASH) playback session failed")
    m.expect_log(r"giving up after \d+ attempts")
    kvs.reset_counters()

    # ls -la STREAM: the listing, then a stat of every entry. A stat waits for a session at most
    # the bounded LIVE_STAT wait (docs/SEMANTICS.md), then shows the placeholder; how long that
    # takes is a time, which tests do not bound: the placeholder and the counts below are checked
    names = os.listdir(m.path("far-cam"))
    sts = {n: os.lstat(m.path("far-cam", n)) for n in names}
    assert sorted(names) == ["clips", "fragments", "images", "ingest", "live.m3u8", "live.mpd"]
    for n in ("live.m3u8", "live.mpd"):
        st = sts[n]
        assert stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 == 0o400
        assert st.st_size == 0  # the documented placeholder: no session yet

    # 8 concurrent stats join the creations already under way (or their remembered failure)
    res = stat_all_at_once(m.path("far-cam", "live.m3u8"))
    assert res == [0] * 8, res
    m.stop()  # waits for the creations in flight: the counts below are final
    c = kvs.counters()
    # one creation per file: each calls GetDataEndpoint once (the failed endpoint is forgotten)
    assert api_count(c, "GetDataEndpoint", "far-cam") == 2, c.get("GetDataEndpoint")
    assert api_count(c, "GetHLSStreamingSessionURL") == 0  # it never reached a server


def test_open_with_an_unreachable_data_endpoint_fails_with_the_connection_error(
        kvs, mount, data_endpoints):
    kvs.create_stream("gone-cam", retention_hours=2)
    data_endpoints({"*": UNREACHABLE})
    m = mount(kvs)
    m.expect_log(r"gone-cam: HLS playback session failed")
    m.expect_log(r"giving up after \d+ attempts")
    # the open waits for the creation (bounded by its budget, docs/SEMANTICS.md) and gets the
    # connection error (docs/ERRORS.md); a second open right after gets the remembered failure
    for _ in range(2):
        with pytest.raises(OSError) as e:
            open(m.path("gone-cam", "live.m3u8")).read()
        assert e.value.errno == errno.ECONNREFUSED
    m.stop()
    assert api_count(kvs.counters(), "GetDataEndpoint", "gone-cam") == 1


def test_concurrent_stats_make_one_session(kvs, mount, faults):
    recent_stream(kvs, "busy-cam")
    m = mount(kvs)
    kvs.reset_counters()
    # keep the creation in flight long enough for every stat to arrive while it runs
    faults({"GetHLSStreamingSessionURL": {"latency_ms": 1500}})
    os.listdir(m.path("busy-cam"))  # readdirplus starts both sessions without waiting
    res = stat_all_at_once(m.path("busy-cam", "live.m3u8"))
    assert api_count(kvs.counters(), "GetHLSStreamingSessionURL") == 1
    data = open(m.path("busy-cam", "live.m3u8"), "rb").read()
    assert data.startswith(b"#EXTM3U")
    # the stats waited for the session (1.5 s < the 2 s a stat may wait): exact size
    assert res == [len(data)] * 8, res
    m.stop()  # waits for any creation still in flight: the count is final
    assert api_count(kvs.counters(), "GetHLSStreamingSessionURL") == 1


def test_stat_then_read_gives_the_exact_playlist(kvs, mount):
    recent_stream(kvs, "exact-cam")
    m = mount(kvs)
    kvs.reset_counters()
    pl = m.path("exact-cam", "live.m3u8")
    size = os.stat(pl).st_size
    with open(pl, "rb") as f:
        data = f.read()
    assert len(data) == size > 0
    # small reads at every offset give the same bytes
    fd = os.open(pl, os.O_RDONLY)
    try:
        parts = []
        while True:
            b = os.read(fd, 7)
            if not b:
                break
            parts.append(b)
    finally:
        os.close(fd)
    assert b"".join(parts) == data
    # the same session's master playlist, fetched independently and rewritten as documented
    text = data.decode()
    token = re.search(r"SessionToken=([^&\s\"]+)", text).group(1)
    base = f"{kvs.url}/hls/v1/"
    with urllib.request.urlopen(f"{base}getHLSMasterPlaylist.m3u8?SessionToken={token}",
                                timeout=30) as r:
        raw = r.read().decode()
    assert text == absolutize_hls(raw, base)
    assert api_count(kvs.counters(), "GetHLSStreamingSessionURL") == 1
    # DASH: the manifest with <BaseURL> and <Location>, stat size equal to the bytes
    mpd = m.path("exact-cam", "live.mpd")
    size = os.stat(mpd).st_size
    data = open(mpd, "rb").read()
    assert len(data) == size > 0 and b"<Location>" in data and b"<BaseURL>" in data


def test_stat_shows_the_placeholder_but_open_gets_the_whole_document(kvs, mount, faults):
    recent_stream(kvs, "slow-cam")
    m = mount(kvs)
    kvs.reset_counters()
    # a session that takes longer than a stat may wait (2 s) but within the budget (5 s)
    faults({"GetHLSStreamingSessionURL": {"latency_ms": 3000}})
    pl = m.path("slow-cam", "live.m3u8")
    assert os.stat(pl).st_size == 0  # placeholder: the session is still being made
    data = open(pl, "rb").read()  # joins the creation under way
    assert data.startswith(b"#EXTM3U") and data.endswith(b"\n")
    assert os.stat(pl).st_size == len(data)  # the placeholder was not cached
    assert api_count(kvs.counters(), "GetHLSStreamingSessionURL") == 1


def test_not_live_warning_has_no_empty_detail(kvs, mount, faults):
    kvs.create_stream("mute-cam", retention_hours=2)
    m = mount(kvs)
    m.expect_log("stream is not live")
    # a 404 with an empty message
    faults({"GetDASHStreamingSessionURL": {"error_rate": 1, "error_status": 404,
                                           "error_type": "ResourceNotFoundException",
                                           "error_message": ""}})
    with pytest.raises(OSError) as e:
        open(m.path("mute-cam", "live.mpd")).read()
    assert e.value.errno == errno.ENODATA
    lines = [l for l in m.log().splitlines() if "stream is not live" in l]
    assert lines and all(l.endswith("mute-cam: stream is not live (no fragment in the last 30 s)")
                         for l in lines), lines
