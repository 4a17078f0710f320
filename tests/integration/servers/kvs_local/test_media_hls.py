"""HLS streaming sessions of kvs-local, created with boto3 (GetHLSStreamingSessionURL on the
GetDataEndpoint endpoint) and read as a player does (plain GETs), checked with ffprobe."""
import json
import re
import time
import urllib.parse

import pytest

from kvs_local.mediatest import (archived_media, by_type, ffprobe_streams, fragments, hls_download, hls_tracks,
                                 http_get, max_gap, media_span, must_get, playlist_tag, playlist_uris, top_boxes,
                                 ts, wait_for)

FPS = 25


@pytest.fixture(scope="module")
def avc(srv, start_ts):
    r = srv.seed_testsrc("hls-avc", duration=10, codec="h264", audio=True, start_ts=start_ts)
    assert len(r.by_type("PERSISTED")) == 5
    return "hls-avc"


@pytest.fixture(scope="module")
def hevc(srv, start_ts):
    r = srv.seed_testsrc("hls-hevc", duration=8, codec="h265", audio=False, start_ts=start_ts)
    assert len(r.by_type("PERSISTED")) == 4
    return "hls-hevc"


def _on_demand(am, stream, start, end, **kw):
    return am.get_hls_streaming_session_url(
        StreamName=stream, PlaybackMode="ON_DEMAND",
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}, **kw
    )["HLSStreamingSessionURL"]


def test_hls_on_demand_h264_aac(srv, avc, start_ts, tmp_path):
    am = archived_media(srv, avc, "GET_HLS_STREAMING_SESSION_URL")
    frs = fragments(am, avc)
    url = _on_demand(am, avc, start_ts - 1, start_ts + 9)
    u = urllib.parse.urlsplit(url)
    assert u.path == "/hls/v1/getHLSMasterPlaylist.m3u8"
    token = urllib.parse.parse_qs(u.query)["SessionToken"][0]
    assert token.endswith("~") and len(token) > 40

    st, h, body = http_get(url)
    assert st == 200 and h["content-type"].lower() == "application/x-mpegurl"
    master = body.decode()
    assert master.startswith("#EXTM3U")
    inf = playlist_tag(master, "#EXT-X-STREAM-INF")
    assert re.search(r'CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"', inf), inf
    assert "RESOLUTION=320x240" in inf and "FRAME-RATE=25.00" in inf and re.search(r"BANDWIDTH=\d+", inf)
    assert 'TYPE=AUDIO' in master and "TrackNumber=2" in master
    tracks = hls_tracks(url)
    assert set(tracks) == {"1", "2"}

    out_v = tmp_path / "v.mp4"
    text, segs = hls_download(tracks["1"], str(out_v))
    for tag in ("#EXT-X-VERSION:7", "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS",
                "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-ENDLIST", "#EXT-X-TARGETDURATION:"):
        assert tag in text, tag
    assert "getMP4InitFragment.mp4?" in text
    assert text.count("#EXTINF:") == 5
    nums = [urllib.parse.parse_qs(urllib.parse.urlsplit(s).query)["FragmentNumber"][0] for s in segs]
    assert nums == [f["FragmentNumber"] for f in frs]
    assert all("getMP4MediaFragment.mp4" in s and "TrackNumber=1" in s for s in segs)
    assert top_boxes(must_get(segs[0]))[:2] == ["moof", "mdat"]
    init = must_get(urllib.parse.urljoin(tracks["1"], re.search(r'URI="([^"]+)"', text).group(1)))
    assert top_boxes(init) == ["ftyp", "moov"]

    v = by_type(ffprobe_streams(str(out_v)))["video"]
    assert v["codec_name"] == "h264" and int(v["nb_read_frames"]) == 10 * FPS
    n, span = media_span(str(out_v), "v")
    assert n == 250 and abs(span - 10.0) < 0.05
    assert max_gap(str(out_v), "v") < 0.05          # decode times line up across fragments

    out_a = tmp_path / "a.mp4"
    hls_download(tracks["2"], str(out_a))
    a = by_type(ffprobe_streams(str(out_a)))["audio"]
    assert a["codec_name"] == "aac"
    _, aspan = media_span(str(out_a), "a")
    assert abs(aspan - 10.0) < 0.15

    # ffmpeg's own HLS client reads the whole session from the master playlist
    st2 = by_type(ffprobe_streams(url))
    assert int(st2["video"]["nb_read_frames"]) == 250 and st2["audio"]["codec_name"] == "aac"


def test_hls_on_demand_h265(srv, hevc, start_ts, tmp_path):
    am = archived_media(srv, hevc, "GET_HLS_STREAMING_SESSION_URL")
    url = _on_demand(am, hevc, start_ts - 1, start_ts + 7)
    master = must_get(url).decode()
    assert re.search(r'CODECS="hvc1\.[^"]+"', master)
    out = tmp_path / "h.mp4"
    hls_download(hls_tracks(url)["1"], str(out))
    v = by_type(ffprobe_streams(str(out)))["video"]
    assert v["codec_name"] == "hevc" and int(v["nb_read_frames"]) == 8 * FPS
    assert abs(media_span(str(out), "v")[1] - 8.0) < 0.05


def test_hls_mpeg_ts(srv, avc, start_ts, tmp_path):
    am = archived_media(srv, avc, "GET_HLS_STREAMING_SESSION_URL")
    url = _on_demand(am, avc, start_ts - 1, start_ts + 9, ContainerFormat="MPEG_TS")
    tracks = hls_tracks(url)
    text = must_get(tracks["all"]).decode()
    assert "getTSFragment.ts?" in text and "#EXT-X-MAP" not in text
    st = by_type(ffprobe_streams(url))
    assert int(st["video"]["nb_read_frames"]) == 250 and st["audio"]["codec_name"] == "aac"


def test_hls_playlist_options(srv, avc, start_ts):
    am = archived_media(srv, avc, "GET_HLS_STREAMING_SESSION_URL")
    frs = fragments(am, avc)
    url = _on_demand(am, avc, start_ts - 1, start_ts + 9, DisplayFragmentTimestamp="ALWAYS",
                     DiscontinuityMode="ALWAYS", MaxMediaPlaylistFragmentResults=3)
    text = must_get(hls_tracks(url)["1"]).decode()
    assert text.count("#EXTINF:") == 3
    assert text.count("#EXT-X-DISCONTINUITY\n") == 3
    pdts = [ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
    assert len(pdts) == 3
    import datetime
    got = datetime.datetime.strptime(pdts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert abs(got.timestamp() - ts(frs[0]["ProducerTimestamp"])) < 0.002
    url = _on_demand(am, avc, start_ts - 1, start_ts + 9, DiscontinuityMode="NEVER")
    text = must_get(hls_tracks(url)["1"]).decode()
    assert "#EXT-X-DISCONTINUITY" not in text and "#EXT-X-PROGRAM-DATE-TIME" not in text


def test_hls_live_playlist_grows(srv, tmp_path):
    live = srv.seed_live("hls-live", codec="h264", audio=True)
    try:
        wait_for(lambda: live.persisted() >= 2, 30, what="two live fragments")
        am = archived_media(srv, "hls-live", "GET_HLS_STREAMING_SESSION_URL")
        url = am.get_hls_streaming_session_url(StreamName="hls-live", PlaybackMode="LIVE",
                                               MaxMediaPlaylistFragmentResults=3)["HLSStreamingSessionURL"]
        tracks = hls_tracks(url)
        first = must_get(tracks["1"]).decode()
        assert "#EXT-X-ENDLIST" not in first and "#EXT-X-PLAYLIST-TYPE" not in first
        seq0 = int(playlist_tag(first, "#EXT-X-MEDIA-SEQUENCE"))
        n0 = len(playlist_uris(first))
        assert 1 <= n0 <= 3

        def grown():
            t = must_get(tracks["1"]).decode()
            uris = playlist_uris(t)
            if int(playlist_tag(t, "#EXT-X-MEDIA-SEQUENCE")) + len(uris) >= seq0 + n0 + 2 and len(uris) == 3:
                return t
            return None
        text = wait_for(grown, 30, 0.5, "two new live fragments")
        seq = int(playlist_tag(text, "#EXT-X-MEDIA-SEQUENCE"))
        uris = playlist_uris(text)
        # the window slides: old entries keep their sequence numbers
        old = playlist_uris(first)
        for i, u in enumerate(old):
            if u in uris:
                assert uris.index(u) + seq == i + seq0
        out = tmp_path / "live.mp4"
        hls_download(tracks["1"], str(out), text)
        v = by_type(ffprobe_streams(str(out)))["video"]
        assert v["codec_name"] == "h264" and int(v["nb_read_frames"]) == 3 * 2 * FPS
        n, span = media_span(str(out), "v")
        assert abs(span - 6.0) < 0.1
        assert max_gap(str(out), "v") < 0.05
        outa = tmp_path / "livea.mp4"
        hls_download(tracks["2"], str(outa))
        assert by_type(ffprobe_streams(str(outa)))["audio"]["codec_name"] == "aac"
    finally:
        live.stop()


def test_hls_session_limit_revokes_oldest(srv, avc, start_ts):
    am = archived_media(srv, avc, "GET_HLS_STREAMING_SESSION_URL")
    urls = [_on_demand(am, avc, start_ts - 1, start_ts + 9) for _ in range(11)]
    st, h, body = http_get(urls[0])
    assert st == 403 and h.get("x-amzn-errortype") == "NotAuthorizedException"
    for u in urls[1:]:
        assert http_get(u)[0] == 200


def test_hls_bad_token_and_cors(srv, avc, start_ts):
    am = archived_media(srv, avc, "GET_HLS_STREAMING_SESSION_URL")
    url = _on_demand(am, avc, start_ts - 1, start_ts + 9)
    st, h, body = http_get(url, headers={"Origin": "http://example.test"})
    assert st == 200 and h["access-control-allow-origin"] == "*"
    st, h, body = http_get(url, method="OPTIONS", headers={
        "Origin": "http://example.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    assert st in (200, 204)
    assert h["access-control-allow-origin"] == "*" and "GET" in h["access-control-allow-methods"]
    bad = url.replace("SessionToken=Ci", "SessionToken=Cx")
    st, h, body = http_get(bad)
    assert st == 403 and h["access-control-allow-origin"] == "*"
    assert json.loads(body)["__type"] == "NotAuthorizedException"


def test_hls_token_expires(kvs_server, monkeypatch):
    monkeypatch.setenv("KVS_LOCAL_SESSION_TTL_SCALE", "0.01")   # Expires=300 → 3 s
    s = kvs_server(no_quotas=True)
    start = float(int(time.time()) - 60)
    s.seed_testsrc("exp", duration=4, start_ts=start)
    am = archived_media(s, "exp", "GET_HLS_STREAMING_SESSION_URL")
    url = _on_demand(am, "exp", start - 1, start + 5, Expires=300)
    assert http_get(url)[0] == 200
    time.sleep(3.5)
    st, h, body = http_get(url)
    assert st == 403
    assert json.loads(body)["Message"] == "Streaming session token is expired"


def test_hls_live_replay(srv, avc, start_ts):
    """LIVE_REPLAY starts at Start and adds each fragment once its time has come; ENDLIST at End."""
    am = archived_media(srv, avc, "GET_HLS_STREAMING_SESSION_URL")
    url = am.get_hls_streaming_session_url(
        StreamName=avc, PlaybackMode="LIVE_REPLAY",
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": start_ts - 1, "EndTimestamp": start_ts + 5}},
    )["HLSStreamingSessionURL"]
    pl = hls_tracks(url)["1"]
    first = must_get(pl).decode()
    assert 1 <= len(playlist_uris(first)) <= 2 and "#EXT-X-ENDLIST" not in first
    text = wait_for(lambda: (lambda t: t if "#EXT-X-ENDLIST" in t else None)(must_get(pl).decode()), 15, 0.5,
                    "the replay to reach End")
    assert len(playlist_uris(text)) == 3       # fragments starting at ~+0, +2, +4


def test_hls_master_describes_the_real_video(srv):
    """The producer header claims 1280x720; the SPS of the sample frames says 640x480, and so does
    the master playlist (as packaged)."""
    from kvs_local.mediatest import h264_sample_track, pic_body
    start = float(int(time.time()) - 60)
    srv.create_stream("hls-pic")
    srv.put_media("hls-pic", pic_body([dict(h264_sample_track(), width=1280, height=720)], 2),
                  timecode_type="RELATIVE", start_ts=start)
    am = archived_media(srv, "hls-pic", "GET_HLS_STREAMING_SESSION_URL")
    url = _on_demand(am, "hls-pic", start - 1, start + 5)
    inf = playlist_tag(must_get(url).decode(), "#EXT-X-STREAM-INF")
    assert "RESOLUTION=640x480" in inf and "FRAME-RATE=25.00" in inf, inf


def test_hls_closes_gaps_in_the_stream(srv, tmp_path):
    """Two recordings 6 s apart: the session timeline closes the gap (decode times line up, so players
    do not stall) and marks it with EXT-X-DISCONTINUITY in ON_DISCONTINUITY mode; the real times stay
    visible in EXT-X-PROGRAM-DATE-TIME."""
    start = float(int(time.time()) - 120)
    srv.seed_testsrc("hls-gap", duration=4, start_ts=start)
    srv.seed_testsrc("hls-gap", duration=4, start_ts=start + 10, create=False)
    am = archived_media(srv, "hls-gap", "GET_HLS_STREAMING_SESSION_URL")
    frs = fragments(am, "hls-gap")
    assert len(frs) == 4
    url = _on_demand(am, "hls-gap", start - 1, start + 15, DiscontinuityMode="ON_DISCONTINUITY",
                     DisplayFragmentTimestamp="ALWAYS")
    out = tmp_path / "gap.mp4"
    text, segs = hls_download(hls_tracks(url)["1"], str(out))
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    lines = text.splitlines()
    assert lines[lines.index("#EXT-X-DISCONTINUITY") + 1].startswith("#EXT-X-PROGRAM-DATE-TIME:")
    n, span = media_span(str(out), "v")
    assert n == 8 * FPS and abs(span - 8.0) < 0.05
    assert max_gap(str(out), "v") < 0.05
