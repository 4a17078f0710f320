"""ListFragments, GetMediaForFragmentList and GetMedia on kvs-local, driven with boto3 and /usr/bin/aws."""
import base64
import json
import subprocess
import time
import urllib.request

import pytest

from kvs_local import mkv, sigv4
from kvs_local.testing import aws_cli, boto3_client, kvs_layout, split_documents

from botocore.exceptions import ClientError, ParamValidationError

REAL = "/work/shared/testdata/kvs-real/output_get_media.mkv"
BULK_START = 1_700_000_000  # integer seconds: boto3 sends whole seconds only
BULK_N = 2500


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    s = kvs_servers.start(request, no_quotas=True, getmedia_idle_seconds=0.7)
    s.seed_testsrc("arc", duration=10, audio=True, start_ts=time.time() - 60)
    s.seed_bulk("arc-bulk", count=BULK_N, start_ts=BULK_START, retention_hours=87600)
    return s


def all_fragments(am, **kw):
    out, token = [], None
    while True:
        r = am.list_fragments(**kw, **({"NextToken": token} if token else {}))
        out += r["Fragments"]
        token = r.get("NextToken")
        if not token:
            return out


def raw_call(srv, path, body):
    data = json.dumps(body).encode()
    h = sigv4.sign_headers("POST", srv.url + path, {"Content-Type": "application/json"}, srv.access_key,
                           srv.secret_key, srv.region, body=data, exclude=("authorization", "content-length"))
    req = urllib.request.Request(srv.url + path, data=data, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_list_fragments_fields_and_shuffle(am, srv):
    frs = am.list_fragments(StreamName="arc")["Fragments"]
    assert len(frs) == 5
    for f in frs:
        assert set(f) == {"FragmentNumber", "FragmentSizeInBytes", "ProducerTimestamp", "ServerTimestamp",
                          "FragmentLengthInMilliseconds"}
        assert len(f["FragmentNumber"]) == 47 and f["FragmentNumber"].startswith("913438523")
        assert abs(f["FragmentLengthInMilliseconds"] - 2000) <= 30
    orders = set()
    for _ in range(8):
        orders.add(tuple(f["FragmentNumber"] for f in am.list_fragments(StreamName="arc")["Fragments"]))
    assert len(orders) > 1, "results must come in no particular order"
    # wire form: epoch seconds as JSON numbers
    st, h, body = raw_call(srv, "/listFragments", {"StreamName": "arc"})
    j = json.loads(body)
    assert st == 200 and j["NextToken"] is None
    assert all(isinstance(f["ProducerTimestamp"], float) for f in j["Fragments"])


def test_list_fragments_sorted_switch(kvs_server):
    s = kvs_server(sort_fragments=True, no_quotas=True)
    s.seed_bulk("b", count=50, start_ts=BULK_START, retention_hours=87600)
    frs = boto3_client(s, "kinesis-video-archived-media").list_fragments(StreamName="b")["Fragments"]
    nums = [f["FragmentNumber"] for f in frs]
    assert nums == sorted(nums) and len(nums) == 50


def test_pagination(am):
    seen = []
    pages = 0
    token = None
    while True:
        r = am.list_fragments(StreamName="arc-bulk", MaxResults=1000, **({"NextToken": token} if token else {}))
        pages += 1
        assert len(r["Fragments"]) <= 1000
        seen += [f["FragmentNumber"] for f in r["Fragments"]]
        token = r.get("NextToken")
        if not token:
            break
        base64.b64decode(token, validate=True)  # opaque base64
    assert pages == 3 and len(seen) == len(set(seen)) == BULK_N
    pag = am.get_paginator("list_fragments")
    got = [f["FragmentNumber"] for p in pag.paginate(StreamName="arc-bulk", PaginationConfig={"PageSize": 400})
           for f in p["Fragments"]]
    assert sorted(got) == sorted(seen)


def test_timestamp_ranges(am):
    # fragment i: producer ts BULK_START + 2i, server ts + 0.5
    sel = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": BULK_START + 20, "EndTimestamp": BULK_START + 40}}
    frs = all_fragments(am, StreamName="arc-bulk", FragmentSelector=sel, MaxResults=3)
    pts = sorted(int(f["ProducerTimestamp"].timestamp()) for f in frs)
    assert pts == list(range(BULK_START + 20, BULK_START + 41, 2))  # inclusive at both ends
    sel = {"FragmentSelectorType": "SERVER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": BULK_START + 20, "EndTimestamp": BULK_START + 40}}
    frs = all_fragments(am, StreamName="arc-bulk", FragmentSelector=sel)
    sts = sorted(f["ServerTimestamp"].timestamp() for f in frs)
    assert sts == [BULK_START + 20.5 + 2 * i for i in range(10)]
    sel["TimestampRange"] = {"StartTimestamp": BULK_START - 1000, "EndTimestamp": BULK_START - 10}
    assert am.list_fragments(StreamName="arc-bulk", FragmentSelector=sel)["Fragments"] == []


def test_list_fragments_aws_cli(srv):
    out = json.loads(aws_cli(srv, "kinesis-video-archived-media", "list-fragments", "--stream-name", "arc-bulk",
                             "--fragment-selector",
                             json.dumps({"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                         "TimestampRange": {"StartTimestamp": BULK_START,
                                                            "EndTimestamp": BULK_START + 1998}}),
                             "--page-size", "300").stdout)
    assert len(out["Fragments"]) == 1000


def test_list_fragments_errors(am, srv):
    with pytest.raises(ClientError) as e:
        am.list_fragments(StreamName="nope")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        am.list_fragments(StreamName="arc", NextToken="bm90LWEtdG9rZW4=")
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        am.list_fragments(StreamName="arc", FragmentSelector={"FragmentSelectorType": "WALL_CLOCK", "TimestampRange": {
            "StartTimestamp": 1, "EndTimestamp": 2}})
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        am.list_fragments(StreamName="arc", FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                                              "TimestampRange": {"StartTimestamp": 5, "EndTimestamp": 2}})
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    for bad in (0, 1001):
        st, h, body = raw_call(srv, "/listFragments", {"StreamName": "arc", "MaxResults": bad})
        assert st == 400 and h["x-amzn-ErrorType"] == "InvalidArgumentException"
        assert json.loads(body)["Message"]


def test_gmffl_layout_matches_real_capture(am):
    nums = sorted(f["FragmentNumber"] for f in am.list_fragments(StreamName="arc")["Fragments"])
    data = am.get_media_for_fragment_list(StreamName="arc", Fragments=nums)["Payload"].read()
    ours = kvs_layout(data)
    real = kvs_layout(open(REAL, "rb").read())
    assert len(ours) == len(nums)
    # real GetMedia output = GMFFL layout + the GetMedia-only trailer Tags after the Cluster
    real_doc = [x for x in real[0] if not (x[0] == "KvsTags" and "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW" in x[2])]
    for doc in ours:
        assert doc == real_doc
    # tag values
    for i, d in enumerate(split_documents(data)):
        seg = [e for e in mkv.walk_documents(d) if e.id == mkv.SEGMENT][0]
        kvs = [c for c in seg.children if c.id == mkv.TAGS][-1]
        tags = dict(mkv.simple_tags(kvs, d))
        assert tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] == nums[i]
        assert len(tags["AWS_KINESISVIDEO_SERVER_TIMESTAMP"].split(".")[1]) == 3
        assert len(tags["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"].split(".")[1]) == 3


def test_gmffl_each_fragment_plays_alone(am, tmp_path):
    frs = am.list_fragments(StreamName="arc")["Fragments"]
    by = {f["FragmentNumber"]: f for f in frs}
    nums = sorted(by, reverse=True)  # output follows the request order
    data = am.get_media_for_fragment_list(StreamName="arc", Fragments=nums)["Payload"].read()
    docs = split_documents(data)
    assert len(docs) == len(nums) and sum(map(len, docs)) == len(data)
    for n, d in zip(nums, docs):
        assert n.encode() in d[:2000]
        assert by[n]["FragmentSizeInBytes"] != len(d)  # stored size, not output size
        p = tmp_path / f"{n}.mkv"
        p.write_bytes(d)
        pr = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(p)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert pr.returncode == 0 and pr.stdout.split() == [b"h264", b"aac"], pr.stderr
        dec = subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-f", "null", "-"], stderr=subprocess.PIPE)
        assert dec.returncode == 0 and dec.stderr == b"", dec.stderr


def test_gmffl_bulk_rewritten_timecodes(am, tmp_path):
    sel = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": BULK_START + 2000, "EndTimestamp": BULK_START + 2006}}
    frs = sorted(am.list_fragments(StreamName="arc-bulk", FragmentSelector=sel)["Fragments"],
                 key=lambda f: f["ProducerTimestamp"])
    assert len(frs) == 4
    data = am.get_media_for_fragment_list(StreamName="arc-bulk", Fragments=[f["FragmentNumber"] for f in frs])["Payload"].read()
    for i, d in enumerate(split_documents(data)):
        seg = [e for e in mkv.walk_documents(d) if e.id == mkv.SEGMENT][0]
        cl = [c for c in seg.children if c.id == mkv.CLUSTER][0]
        tc = [c for c in cl.children if c.id == mkv.TIMECODE][0]
        assert mkv.read_uint(d[tc.data_offset:tc.end]) == (1000 + i) * 2000
        tags = dict(mkv.simple_tags([c for c in seg.children if c.id == mkv.TAGS][-1], d))
        assert tags["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"] == f"{BULK_START + 2000 + 2 * i}.000"
        p = tmp_path / f"b{i}.mkv"
        p.write_bytes(d)
        dec = subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-f", "null", "-"], stderr=subprocess.PIPE)
        assert dec.returncode == 0 and dec.stderr == b"", dec.stderr
        pr = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=start_time", "-of", "csv=p=0", str(p)],
                            stdout=subprocess.PIPE)
        assert abs(float(pr.stdout) - (1000 + i) * 2.0) < 0.1


def test_gmffl_unknown_and_invalid_fragments(am, srv):
    good = am.list_fragments(StreamName="arc", MaxResults=1)["Fragments"][0]["FragmentNumber"]
    missing = "91343852333999999999999999999999999999999999999"
    data = am.get_media_for_fragment_list(StreamName="arc", Fragments=[good, missing])["Payload"].read()
    docs = split_documents(data)
    assert len(docs) == 2
    seg = [e for e in mkv.walk_documents(docs[1]) if e.id == mkv.SEGMENT][0]
    assert [c.id for c in seg.children] == [mkv.TAGS]
    tags = dict(mkv.simple_tags(seg.children[0], docs[1]))
    assert tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] == missing
    assert tags["AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE"] == "4000" and tags["AWS_KINESISVIDEO_EXCEPTION_MESSAGE"]
    with pytest.raises(ClientError) as e:
        am.get_media_for_fragment_list(StreamName="arc", Fragments=["12ab"])
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        am.get_media_for_fragment_list(StreamName="nope", Fragments=[good])
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    st, h, body = raw_call(srv, "/getMediaForFragmentList", {"StreamName": "arc", "Fragments": [good] * 1001})
    assert st == 400 and h["x-amzn-ErrorType"] == "InvalidArgumentException"
    st, h, body = raw_call(srv, "/getMediaForFragmentList", {"StreamName": "arc", "Fragments": [good] * 1000})
    assert st == 200 and len(split_documents(body)) == 1000


def test_gmffl_aws_cli(srv, am, tmp_path):
    nums = sorted(f["FragmentNumber"] for f in am.list_fragments(StreamName="arc")["Fragments"])[:2]
    out = tmp_path / "cli.mkv"
    r = json.loads(aws_cli(srv, "kinesis-video-archived-media", "get-media-for-fragment-list", "--stream-name", "arc",
                           str(out), "--fragments", *nums).stdout)
    assert r["ContentType"] == "video/webm"
    assert len(kvs_layout(out.read_bytes())) == 2


def test_get_media(srv, tmp_path):
    med = boto3_client(srv, "kinesis-video-media")
    nums = sorted(f["FragmentNumber"] for f in boto3_client(srv, "kinesis-video-archived-media")
                  .list_fragments(StreamName="arc")["Fragments"])
    r = med.get_media(StreamName="arc", StartSelector={"StartSelectorType": "EARLIEST"})
    assert r["ContentType"] == "video/webm"
    data = r["Payload"].read()
    real = kvs_layout(open(REAL, "rb").read())
    ours = kvs_layout(data)
    assert len(ours) == 5 and all(d == real[0] for d in ours)
    r = med.get_media(StreamName="arc", StartSelector={"StartSelectorType": "FRAGMENT_NUMBER",
                                                       "AfterFragmentNumber": nums[2]})
    docs = split_documents(r["Payload"].read())
    assert [nums[3].encode() in docs[0], len(docs)] == [True, 2]
    r = med.get_media(StreamName="arc", StartSelector={"StartSelectorType": "CONTINUATION_TOKEN",
                                                       "ContinuationToken": nums[3]})
    assert len(split_documents(r["Payload"].read())) == 1
    frs = sorted(boto3_client(srv, "kinesis-video-archived-media").list_fragments(StreamName="arc-bulk")["Fragments"],
                 key=lambda f: f["ProducerTimestamp"])
    r = med.get_media(StreamName="arc-bulk", StartSelector={"StartSelectorType": "PRODUCER_TIMESTAMP",
                                                            "StartTimestamp": BULK_START + 21})
    first = split_documents(r["Payload"].read(200000))[0]
    assert b"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP" in first and f"{BULK_START + 20}.000".encode() in first
    r["Payload"].close()
    with pytest.raises(ClientError) as e:
        med.get_media(StreamName="nope", StartSelector={"StartSelectorType": "EARLIEST"})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_retention_hides_old_fragments(kvs_server):
    s = kvs_server(no_quotas=True)
    now = int(time.time())
    # 3 hours of fragments, retention 1 hour: only the last hour is visible (by server timestamp)
    s.seed_bulk("ret", count=5400, start_ts=now - 3 * 3600, retention_hours=1)
    am = boto3_client(s, "kinesis-video-archived-media")
    frs = all_fragments(am, StreamName="ret", MaxResults=1000)
    assert 1790 <= len(frs) <= 1800
    assert min(f["ServerTimestamp"].timestamp() for f in frs) >= now - 3600 - 1
    sel = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": now - 3 * 3600, "EndTimestamp": now - 2 * 3600}}
    assert am.list_fragments(StreamName="ret", FragmentSelector=sel)["Fragments"] == []
