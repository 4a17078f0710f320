"""DASH streaming sessions of kvs-local (GetDASHStreamingSessionURL through boto3), read with plain GETs
and with ffmpeg's DASH client, checked with ffprobe."""
import urllib.parse
import xml.etree.ElementTree as ET

from kvs_local.mediatest import (archived_media, by_type, ffprobe_streams, fragments, http_get, max_gap,
                                 media_span, must_get, top_boxes, ts, wait_for)

FPS = 25
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
KVS_NS = "https://kinesisvideo.amazonaws.com/ns/dash"


def _session(am, stream, mode="ON_DEMAND", start=None, end=None, **kw):
    args = dict(StreamName=stream, PlaybackMode=mode, **kw)
    if start is not None:
        args["DASHFragmentSelector"] = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                        "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}
    return am.get_dash_streaming_session_url(**args)["DASHStreamingSessionURL"]


def _segments(url, mpd, content_type):
    """(init URL, [media URLs]) of an AdaptationSet, expanding SegmentTemplate/SegmentTimeline."""
    aset = [a for a in mpd.iter("{%s}AdaptationSet" % NS["d"]) if a.get("contentType") == content_type][0]
    tpl = aset.find(".//d:SegmentTemplate", NS)
    number = int(tpl.get("startNumber", "1"))
    urls = []
    for s in tpl.find("d:SegmentTimeline", NS).findall("d:S", NS):
        for _ in range(int(s.get("r", "0")) + 1):
            urls.append(urllib.parse.urljoin(url, tpl.get("media").replace("$Number$", str(number))))
            number += 1
    return urllib.parse.urljoin(url, tpl.get("initialization")), urls


def test_dash_on_demand_h264_aac(srv, start_ts, tmp_path):
    srv.seed_testsrc("dash-avc", duration=10, codec="h264", audio=True, start_ts=start_ts)
    am = archived_media(srv, "dash-avc", "GET_DASH_STREAMING_SESSION_URL")
    frs = fragments(am, "dash-avc")
    url = _session(am, "dash-avc", start=start_ts - 1, end=start_ts + 9,
                   DisplayFragmentNumber="ALWAYS", DisplayFragmentTimestamp="ALWAYS")
    assert urllib.parse.urlsplit(url).path == "/dash/v1/getDASHManifest.mpd"
    st, h, body = http_get(url)
    assert st == 200 and h["content-type"] == "application/dash+xml"
    mpd = ET.fromstring(body)
    assert mpd.get("type") == "static"
    sets = {a.get("contentType"): a for a in mpd.iter("{%s}AdaptationSet" % NS["d"])}
    assert set(sets) == {"video", "audio"}
    rep = sets["video"].find("d:Representation", NS)
    assert rep.get("codecs").startswith("avc1.") and rep.get("width") == "320"
    ss = sets["video"].findall(".//d:S", NS)
    assert [s.get("{%s}fn" % KVS_NS) for s in ss] == [f["FragmentNumber"] for f in frs]
    assert [abs(float(s.get("{%s}ts" % KVS_NS)) - ts(f["ProducerTimestamp"])) < 0.002
            for s, f in zip(ss, frs)] == [True] * 5

    init, segs = _segments(url, mpd, "video")
    assert top_boxes(must_get(init)) == ["ftyp", "moov"]
    out = tmp_path / "v.mp4"
    with open(out, "wb") as f:
        f.write(must_get(init))
        for s in segs:
            f.write(must_get(s))
    v = by_type(ffprobe_streams(str(out)))["video"]
    assert int(v["nb_read_frames"]) == 250
    assert abs(media_span(str(out), "v")[1] - 10.0) < 0.05 and max_gap(str(out), "v") < 0.05

    # ffmpeg's DASH client plays the manifest
    st2 = by_type(ffprobe_streams(url))
    assert st2["video"]["codec_name"] == "h264" and int(st2["video"]["nb_read_frames"]) == 250
    assert st2["audio"]["codec_name"] == "aac"


def test_dash_on_demand_h265(srv, start_ts):
    srv.seed_testsrc("dash-hevc", duration=6, codec="h265", audio=False, start_ts=start_ts)
    am = archived_media(srv, "dash-hevc", "GET_DASH_STREAMING_SESSION_URL")
    url = _session(am, "dash-hevc", start=start_ts - 1, end=start_ts + 5)
    mpd = ET.fromstring(must_get(url))
    assert mpd.find(".//d:Representation", NS).get("codecs").startswith("hvc1.")
    v = by_type(ffprobe_streams(url))["video"]
    assert v["codec_name"] == "hevc" and int(v["nb_read_frames"]) == 6 * FPS


def test_dash_live_manifest(srv, tmp_path):
    live = srv.seed_live("dash-live", codec="h264")
    try:
        wait_for(lambda: live.persisted() >= 2, 30, what="live fragments")
        am = archived_media(srv, "dash-live", "GET_DASH_STREAMING_SESSION_URL")
        url = _session(am, "dash-live", "LIVE", DisplayFragmentNumber="ALWAYS")
        mpd = ET.fromstring(must_get(url))
        assert mpd.get("type") == "dynamic"
        n0 = len(mpd.findall(".//d:S", NS))
        fns0 = [s.get("{%s}fn" % KVS_NS) for s in mpd.findall(".//d:S", NS)]

        def grown():
            m = ET.fromstring(must_get(url))
            fns = [s.get("{%s}fn" % KVS_NS) for s in m.findall(".//d:S", NS)]
            return m if fns[-1] != fns0[-1] else None
        mpd2 = wait_for(grown, 20, 0.5, "a new live fragment in the MPD")
        assert len(mpd2.findall(".//d:S", NS)) >= n0
        init, segs = _segments(url, mpd2, "video")
        out = tmp_path / "live.mp4"
        with open(out, "wb") as f:
            f.write(must_get(init))
            for s in segs:
                f.write(must_get(s))
        v = by_type(ffprobe_streams(str(out)))["video"]
        assert int(v["nb_read_frames"]) == len(segs) * 2 * FPS
        assert max_gap(str(out), "v") < 0.05
    finally:
        live.stop()
