"""kvs-local's GetImages as the service does it (kvs-api.md 2.6), checked with boto3 (and raw signed
requests for values boto3's own validation would refuse to send): request validation and its
errors, pages of at most 25 with NextToken bound to its request, NO_MEDIA entries, width/height
rules (lenient where the docs disagree), and the per-stream quota."""
import base64
import time

import pytest
from botocore.exceptions import ClientError

from kvs_local import seed as _seed
from kvs_local.mediatest import archived_media, by_type, ffprobe_streams, ts


@pytest.fixture(scope="module")
def stream(srv):
    start = float(int(time.time()) - 900)
    r = srv.seed_testsrc("rules", duration=6, codec="h264", start_ts=start)
    assert len(r.by_type("PERSISTED")) == 3
    return "rules", start


def _raw(srv, body):
    """A signed GetImages with any body (what boto3's parameter checks would stop)."""
    return _seed._signed_json(srv.url, "/getImages", body, srv.access_key, srv.secret_key, srv.region)


def _code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def _base(name, start, **kw):
    d = dict(StreamName=name, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=start,
             EndTimestamp=start + 4, SamplingInterval=3000, Format="JPEG")
    d.update(kw)
    return d


def _probe(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return by_type(ffprobe_streams(str(p), count_frames=False))["video"]


def test_validation_errors_are_invalid_argument(srv, stream):
    name, start = stream
    am = archived_media(srv, name, "GET_IMAGES")
    bad = [dict(EndTimestamp=start + 301),                   # more than 300 s
           dict(EndTimestamp=start - 1),                     # end before start
           dict(MaxResults=101),
           dict(WidthPixels=3841, HeightPixels=100),
           dict(WidthPixels=100, HeightPixels=2161),
           dict(FormatConfig={"JPEGQuality": "101"}),
           dict(FormatConfig={"Quality": "50"})]
    for kw in bad:
        with pytest.raises(ClientError) as e:
            am.get_images(**_base(name, start, **kw))
        assert _code(e) == "InvalidArgumentException", kw
    # what boto3 would not send: missing required fields, a sampling interval under 200 ms
    for drop in ("ImageSelectorType", "Format", "StartTimestamp", "EndTimestamp"):
        body = _base(name, start)
        del body[drop]
        with pytest.raises(_seed.PutMediaError) as e:
            _raw(srv, body)
        assert (e.value.status, e.value.type_) == (400, "InvalidArgumentException"), drop
    with pytest.raises(_seed.PutMediaError) as e:
        _raw(srv, _base(name, start, SamplingInterval=199))
    assert e.value.type_ == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        am.get_images(**_base("no-such-stream", start))
    assert _code(e) == "ResourceNotFoundException"


def test_lenient_where_the_docs_disagree(srv, stream, tmp_path):
    name, start = stream
    am = archived_media(srv, name, "GET_IMAGES")
    # the newer model: 200 ms minimum and no maximum (the older said 3000..20000); an interval
    # longer than the range gives the image at StartTimestamp
    r = _raw(srv, _base(name, start + 1, SamplingInterval=200, EndTimestamp=start + 1.4))
    assert [round(i["TimeStamp"] - start, 3) for i in r["Images"]] == [1.0, 1.2, 1.4]
    r = am.get_images(**_base(name, start, SamplingInterval=60000, EndTimestamp=start + 299.999))
    assert [round(ts(i["TimeStamp"]) - start) for i in r["Images"]] == [0, 60, 120, 180, 240]
    assert "ImageContent" in r["Images"][0] and all(i.get("Error") == "NO_MEDIA" for i in r["Images"][1:])
    # SamplingInterval may be left out (the newer model; boto3's older one requires it)
    r = _raw(srv, {k: v for k, v in _base(name, start + 1).items() if k != "SamplingInterval"})
    assert len(r["Images"]) == 2
    # one of WidthPixels / HeightPixels keeps the source's aspect ratio (320x240)
    for kw, size in ((dict(WidthPixels=160), (160, 120)), (dict(HeightPixels=60), (80, 60)),
                     (dict(WidthPixels=100, HeightPixels=100), (100, 100))):
        r = am.get_images(**_base(name, start + 1, EndTimestamp=start + 1, **kw))
        v = _probe(tmp_path, "w.jpg", base64.b64decode(r["Images"][0]["ImageContent"]))
        assert (v["width"], v["height"]) == size, kw


def test_pages_of_25_and_next_token_bound_to_its_request(srv, stream):
    name, start = stream
    am = archived_media(srv, name, "GET_IMAGES")
    kw = _base(name, start - 100, EndTimestamp=start + 200, SamplingInterval=5000, MaxResults=100)
    pages, token = [], None
    while True:
        r = am.get_images(**kw, **({"NextToken": token} if token else {}))
        pages.append(r["Images"])
        token = r.get("NextToken")
        if not token:
            break
        if len(pages) == 1:
            first_token = token
    assert [len(p) for p in pages] == [25, 25, 11]
    got = [round(ts(i["TimeStamp"]) - start) for p in pages for i in p]
    assert got == list(range(-100, 201, 5))
    with_media = [round(ts(i["TimeStamp"]) - start) for p in pages for i in p if "ImageContent" in i]
    assert with_media == [0, 5]                         # the 6 s of media; the rest NO_MEDIA
    for p in pages:
        for i in p:
            assert ("ImageContent" in i) != (i.get("Error") == "NO_MEDIA")
    # a token only continues the request that made it
    for other in (dict(kw, StartTimestamp=start - 99), dict(kw, SamplingInterval=4000),
                  dict(kw, ImageSelectorType="SERVER_TIMESTAMP")):
        with pytest.raises(ClientError) as e:
            am.get_images(NextToken=first_token, **{k: v for k, v in other.items()})
        assert _code(e) == "InvalidArgumentException"
    for junk in ("not-base64!", "QUJD", "=" * 3):
        with pytest.raises(ClientError) as e:
            am.get_images(NextToken=junk, **kw)
        assert _code(e) == "InvalidArgumentException"


def test_quota_five_a_second_per_stream(kvs_server):
    s = kvs_server()    # quotas on, as the service has them
    start = float(int(time.time()) - 600)
    s.seed_testsrc("q", duration=2, start_ts=start)
    am = archived_media(s, "q", "GET_IMAGES")
    kw = _base("q", start - 60, EndTimestamp=start - 50)    # NO_MEDIA only: cheap
    codes = []
    for _ in range(12):
        try:
            am.get_images(**kw)
            codes.append("ok")
        except ClientError as e:
            codes.append(e.response["Error"]["Code"])
    assert "ClientLimitExceededException" in codes and codes[:5] == ["ok"] * 5
    assert s.counters()["GetImages"]["throttled"] == codes.count("ClientLimitExceededException")
