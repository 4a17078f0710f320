"""GetImages through boto3: JPEG/PNG frames from seeded H.264 media, scaling, pagination, NO_MEDIA."""
import base64
import time

import pytest

from kvs_local.mediatest import archived_media, by_type, ffprobe_streams, ts


@pytest.fixture(scope="module")
def stream(srv):
    start = float(int(time.time()) - 120)
    r = srv.seed_testsrc("img", duration=10, codec="h264", start_ts=start)
    assert len(r.by_type("PERSISTED")) == 5
    return "img", start


def _probe(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return by_type(ffprobe_streams(str(p), count_frames=False))["video"]


def test_get_images_jpeg_pages_and_no_media(srv, stream, tmp_path):
    name, start = stream
    am = archived_media(srv, name, "GET_IMAGES")
    kw = dict(StreamName=name, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=start + 1,
              EndTimestamp=start + 13, SamplingInterval=4000, Format="JPEG", MaxResults=3)
    p1 = am.get_images(**kw)
    assert len(p1["Images"]) == 3 and p1.get("NextToken")
    p2 = am.get_images(NextToken=p1["NextToken"], **kw)
    assert len(p2["Images"]) == 1 and not p2.get("NextToken")
    images = p1["Images"] + p2["Images"]
    assert [round(ts(i["TimeStamp"]) - start, 3) for i in images] == [1.0, 5.0, 9.0, 13.0]
    assert images[3].get("Error") == "NO_MEDIA" and not images[3].get("ImageContent")
    contents = []
    for k, img in enumerate(images[:3]):
        assert not img.get("Error")
        data = base64.b64decode(img["ImageContent"])
        assert data[:2] == b"\xff\xd8"
        v = _probe(tmp_path, f"i{k}.jpg", data)
        assert v["codec_name"] == "mjpeg" and (v["width"], v["height"]) == (320, 240)
        contents.append(data)
    assert len(set(contents)) == 3          # different moments give different pictures


def test_get_images_png_scaled_server_timestamp(srv, stream, tmp_path):
    name, start = stream
    am = archived_media(srv, name, "GET_IMAGES")
    frs = am.list_fragments(StreamName=name)["Fragments"]
    s0 = min(ts(f["ServerTimestamp"]) for f in frs)
    r = am.get_images(StreamName=name, ImageSelectorType="SERVER_TIMESTAMP", StartTimestamp=int(s0) + 1,
                      EndTimestamp=int(s0) + 4, SamplingInterval=3000, Format="PNG",
                      WidthPixels=160, HeightPixels=120)
    imgs = [i for i in r["Images"] if not i.get("Error")]
    assert imgs
    data = base64.b64decode(imgs[0]["ImageContent"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    v = _probe(tmp_path, "i.png", data)
    assert v["codec_name"] == "png" and (v["width"], v["height"]) == (160, 120)


def test_get_images_jpeg_quality(srv, stream):
    name, start = stream
    am = archived_media(srv, name, "GET_IMAGES")
    kw = dict(StreamName=name, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=start + 1,
              EndTimestamp=start + 1, SamplingInterval=3000, Format="JPEG")
    lo = base64.b64decode(am.get_images(FormatConfig={"JPEGQuality": "10"}, **kw)["Images"][0]["ImageContent"])
    hi = base64.b64decode(am.get_images(FormatConfig={"JPEGQuality": "95"}, **kw)["Images"][0]["ImageContent"])
    assert len(lo) < len(hi)
