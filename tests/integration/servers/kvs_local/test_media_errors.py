"""Error cases of GetClip, GetHLSStreamingSessionURL, GetDASHStreamingSessionURL and GetImages, each
seen by botocore (error code and HTTP status as parsed by the real client)."""
import time

import botocore.exceptions
import pytest

from kvs_local.mediatest import archived_media, error_code, h264_sample_track, pic_body

VIDEO = h264_sample_track()


@pytest.fixture(scope="module")
def t0():
    return float(int(time.time()) - 300)


def _put(srv, name, tracks, t0, retention=24):
    srv.create_stream(name, retention_hours=retention)
    r = srv.put_media(name, pic_body(tracks), timecode_type="RELATIVE", start_ts=t0)
    assert len(r.by_type("RECEIVED")) == 2, r.acks   # (retention 0: RECEIVED but never PERSISTED)
    return name


@pytest.fixture(scope="module")
def streams(srv, t0):
    good = _put(srv, "err-good", [VIDEO], t0)
    fourcc = _put(srv, "err-fourcc", [{"number": 1, "type": "video", "codec_id": "V_MS/VFW/FOURCC",
                                        "codec_private": b"\x28" + b"\x00" * 39, "width": 1280, "height": 720}], t0)
    opus = _put(srv, "err-opus", [VIDEO, {"number": 2, "type": "audio", "codec_id": "A_OPUS",
                                          "codec_private": b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00",
                                          "sampling_frequency": 48000, "channels": 2}], t0)
    nocpd = _put(srv, "err-nocpd", [{k: v for k, v in VIDEO.items() if k != "codec_private"}], t0)
    badcpd = _put(srv, "err-badcpd", [dict(VIDEO, codec_private=b"\x00\x42\x00\x1e\xff\xe1\x00")], t0)
    ret0 = _put(srv, "err-ret0", [VIDEO], t0, retention=0)
    srv.create_stream("err-empty")
    return {"good": good, "fourcc": fourcc, "opus": opus, "nocpd": nocpd, "badcpd": badcpd, "ret0": ret0, "empty": "err-empty"}


def _expect(fn, code, status=400):
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        fn()
    assert error_code(ei.value) == code, ei.value.response
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    return ei.value


def _clip(am, name, start, end):
    return lambda: am.get_clip(StreamName=name, ClipFragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}})


def _hls(am, name, start, end, mode="ON_DEMAND", **kw):
    def f():
        args = dict(StreamName=name, PlaybackMode=mode, **kw)
        if start is not None:
            args["HLSFragmentSelector"] = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                           "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}
        return am.get_hls_streaming_session_url(**args)
    return f


def _dash(am, name, start, end, mode="ON_DEMAND", **kw):
    def f():
        args = dict(StreamName=name, PlaybackMode=mode, **kw)
        if start is not None:
            args["DASHFragmentSelector"] = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                            "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}
        return am.get_dash_streaming_session_url(**args)
    return f


def test_get_clip_errors(srv, streams, t0):
    am = archived_media(srv, streams["good"])
    assert am.get_clip(StreamName="err-good", ClipFragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": t0 - 1, "EndTimestamp": t0 + 10}})["Payload"].read()[4:8] == b"ftyp"
    _expect(_clip(am, "err-good", t0 + 10, t0), "InvalidArgumentException")               # End before Start
    _expect(_clip(am, "err-good", t0 - 86401, t0 + 10), "InvalidArgumentException")       # more than 24 h
    _expect(_clip(am, "err-good", t0 - 3600, t0 - 1800), "ResourceNotFoundException", 404)  # no fragments
    _expect(_clip(am, "err-nosuch", t0, t0 + 10), "ResourceNotFoundException", 404)       # no stream
    _expect(_clip(am, "err-fourcc", t0 - 1, t0 + 10), "UnsupportedStreamMediaTypeException")
    _expect(_clip(am, "err-opus", t0 - 1, t0 + 10), "UnsupportedStreamMediaTypeException")
    _expect(_clip(am, "err-nocpd", t0 - 1, t0 + 10), "MissingCodecPrivateDataException")
    _expect(_clip(am, "err-badcpd", t0 - 1, t0 + 10), "InvalidCodecPrivateDataException")
    _expect(_clip(am, "err-ret0", t0 - 1, t0 + 10), "NoDataRetentionException")


def test_get_clip_errors_aws_cli(srv, streams, t0, tmp_path):
    from kvs_local.mediatest import aws_get_clip
    p = aws_get_clip(srv, "err-fourcc", t0 - 1, t0 + 10, str(tmp_path / "x.mp4"))
    assert p.returncode != 0 and b"UnsupportedStreamMediaTypeException" in p.stderr


@pytest.mark.parametrize("kind", ["HLS", "DASH"])
def test_streaming_session_errors(srv, streams, t0, kind):
    api = "GET_HLS_STREAMING_SESSION_URL" if kind == "HLS" else "GET_DASH_STREAMING_SESSION_URL"
    am = archived_media(srv, streams["good"], api)
    mk = _hls if kind == "HLS" else _dash
    assert mk(am, "err-good", t0 - 1, t0 + 10)()
    _expect(mk(am, "err-good", t0 + 10, t0), "InvalidArgumentException")
    _expect(mk(am, "err-good", t0 - 86401, t0 + 10), "InvalidArgumentException")
    _expect(mk(am, "err-good", None, None), "InvalidArgumentException")                   # ON_DEMAND needs a range
    _expect(mk(am, "err-good", t0 - 1, t0 + 10, mode="LIVE"), "InvalidArgumentException")  # LIVE takes no range
    _expect(mk(am, "err-good", t0 - 1, t0 + 10, Expires=50000), "InvalidArgumentException")
    _expect(mk(am, "err-good", t0 - 3600, t0 - 1800), "ResourceNotFoundException", 404)
    # LIVE: nothing arrived in the last 30 s (the fragments were ingested, but the stream has gone quiet)
    e = _expect(mk(am, "err-empty", None, None, mode="LIVE"), "ResourceNotFoundException", 404)
    assert "No fragments found in the stream for the streaming request." in str(e)
    _expect(mk(am, "err-nosuch", None, None, mode="LIVE"), "ResourceNotFoundException", 404)
    _expect(mk(am, "err-fourcc", t0 - 1, t0 + 10), "UnsupportedStreamMediaTypeException")
    _expect(mk(am, "err-opus", t0 - 1, t0 + 10), "UnsupportedStreamMediaTypeException")
    _expect(mk(am, "err-nocpd", t0 - 1, t0 + 10), "MissingCodecPrivateDataException")
    _expect(mk(am, "err-badcpd", t0 - 1, t0 + 10), "InvalidCodecPrivateDataException")
    _expect(mk(am, "err-ret0", t0 - 1, t0 + 10), "NoDataRetentionException")
    with pytest.raises(botocore.exceptions.ParamValidationError):   # botocore itself enforces Expires >= 300
        mk(am, "err-good", t0 - 1, t0 + 10, Expires=100)()


def test_live_session_needs_recent_fragment(srv, streams):
    """A stream whose newest fragment arrived more than 30 s ago (bulk-seeded history) → 404 for LIVE."""
    srv.seed_bulk("err-old", count=5, start_ts=time.time() - 3600, interval_ms=2000)
    am = archived_media(srv, "err-old", "GET_HLS_STREAMING_SESSION_URL")
    e = _expect(_hls(am, "err-old", None, None, mode="LIVE"), "ResourceNotFoundException", 404)
    assert "No fragments found in the stream for the streaming request." in str(e)
    _expect(_dash(am, "err-old", None, None, mode="LIVE"), "ResourceNotFoundException", 404)


def test_get_images_errors(srv, streams, t0):
    am = archived_media(srv, streams["good"], "GET_IMAGES")

    def img(name, start, end, **kw):
        return lambda: am.get_images(StreamName=name, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=start,
                                     EndTimestamp=end, SamplingInterval=kw.pop("SamplingInterval", 3000),
                                     Format="JPEG", **kw)
    ok = img("err-good", t0, t0 + 3)()
    assert ok["Images"] and "ImageContent" in ok["Images"][0]
    _expect(img("err-good", t0 + 10, t0), "InvalidArgumentException")
    _expect(img("err-good", t0, t0 + 301), "InvalidArgumentException")
    _expect(img("err-nosuch", t0, t0 + 3), "ResourceNotFoundException", 404)
    _expect(img("err-good", t0, t0 + 3, NextToken="bm90LWEtdG9rZW4="), "InvalidArgumentException")
    # frames of an unsupported codec cannot be rendered: MEDIA_ERROR per image
    r = img("err-fourcc", t0, t0 + 3)()
    assert [i.get("Error") for i in r["Images"]] == ["MEDIA_ERROR", "MEDIA_ERROR"]
