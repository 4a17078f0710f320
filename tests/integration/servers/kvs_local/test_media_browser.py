"""Browser playback of kvs-local HLS sessions: headless Chromium (Debian `chromium`) with hls.js
(npm, installed into tests/kvs_local/web/node_modules, not committed).

* LIVE: a live camera seeding (ffmpeg -re → one long signed PutMedia) feeds the stream while the
  page plays the LIVE session URL; playback time must advance by at least 3 seconds.
* ON_DEMAND: the page seeks, then currentTime must keep advancing from the seek target.
"""
import time

import pytest

from kvs_local import webplayer
from kvs_local.mediatest import archived_media, wait_for

pytestmark = pytest.mark.skipif(webplayer.chromium_path() is None,
                                reason="Debian chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    if not webplayer.ensure_hlsjs():
        pytest.fail("hls.js is missing: run `npm install` in tests/kvs_local/web")
    return kvs_servers.start(request)   # quotas on, as the service


def _fatal(report):
    return [e for e in report.get("errors", []) if e.get("fatal")]


def test_hlsjs_plays_live_session(srv):
    live = srv.seed_live("browser-live", codec="h264", audio=True)
    try:
        wait_for(lambda: live.persisted() >= 2, 30, what="two live fragments")
        am = archived_media(srv, "browser-live", "GET_HLS_STREAMING_SESSION_URL")
        url = am.get_hls_streaming_session_url(StreamName="browser-live", PlaybackMode="LIVE")[
            "HLSStreamingSessionURL"]
        # up to 60 s of play for a loaded machine; the page ends once 4 s have played
        rep = webplayer.play(url, mode="live", wait_ms=60000, timeout=120, goal=4.0)
        assert rep.get("supported"), rep
        assert not _fatal(rep), rep["errors"]
        adv = webplayer.advance(rep)
        assert adv >= 3.0, (adv, rep["samples"], rep["errors"])
        video_frags = [f for f in rep["frags"] if f["type"] == "main"]
        assert len({f["sn"] for f in video_frags}) >= 3, rep["frags"]   # several fragments in a row
        assert rep["final"]["decoded"] and rep["final"]["decoded"] >= 3 * 25
        assert any(e["ev"] == "playing" for e in rep["events"])
    finally:
        live.stop()


def test_hlsjs_seeks_in_on_demand_session(srv):
    start = float(int(time.time()) - 120)
    srv.seed_testsrc("browser-vod", duration=20, codec="h264", audio=True, start_ts=start)
    am = archived_media(srv, "browser-vod", "GET_HLS_STREAMING_SESSION_URL")
    url = am.get_hls_streaming_session_url(
        StreamName="browser-vod", PlaybackMode="ON_DEMAND",
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": start - 1, "EndTimestamp": start + 19}},
    )["HLSStreamingSessionURL"]
    rep = webplayer.play(url, mode="seek", seek=12.0, wait_ms=60000, timeout=120)
    assert not _fatal(rep), rep["errors"]
    seeks = [e for e in rep["events"] if e["ev"] == "seek"]
    seeked = [e for e in rep["events"] if e["ev"] == "seeked" and e["currentTime"] >= 11.9]
    assert seeks and seeked, rep["events"]
    after = [s[1] for s in rep["samples"] if s[0] > seeked[0]["t"]]
    assert after and max(after) >= 12.0 + 2.0, (after, rep["errors"])   # advancing after the seek
    assert min(after) >= 11.9
