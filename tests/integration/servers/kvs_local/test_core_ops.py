"""kvs-local operations: quotas and throttling, fault injection, counters, concurrency, restart,
seeding modes (file, H.265, live camera, bulk 300,000 fragments), launcher."""
import json
import os
import pathlib
import subprocess
import threading
import time

import pytest

from kvs_local import mkv
from kvs_local.testing import aws_cli, boto3_client, split_documents

from botocore.exceptions import ClientError

REPO = str(pathlib.Path(__file__).resolve().parents[4])


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    s = kvs_servers.start(request)
    s.seed_testsrc("ops", duration=6)
    return s


@pytest.fixture(autouse=True)
def _clean(srv):
    srv.clear_faults()
    time.sleep(1.05)  # fresh TPS windows
    yield
    srv.clear_faults()


def code(e):
    return e.value.response["Error"]["Code"]


def test_throttling_burst_boto3(srv):
    kv = boto3_client(srv, "kinesisvideo")
    errors = []
    ok = 0
    for _ in range(12):
        try:
            kv.describe_stream(StreamName="ops")
            ok += 1
        except ClientError as e:
            errors.append(e.response)
    assert ok == 5 and len(errors) == 7
    r = errors[0]
    assert r["Error"]["Code"] == "ClientLimitExceededException"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert r["Error"]["Message"] == "Limit exceeded on number of requests for DescribeStream API for resource 'ops'"
    time.sleep(1.05)
    kv.describe_stream(StreamName="ops")  # the window has passed
    am = boto3_client(srv, "kinesis-video-archived-media")
    seen = set()
    for _ in range(8):
        for api, call in (("ListFragments", lambda: am.list_fragments(StreamName="ops")),
                          ("GetDataEndpoint", lambda: kv.get_data_endpoint(StreamName="ops", APIName="GET_MEDIA"))):
            try:
                call()
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ClientLimitExceededException"
                seen.add(api)
    assert seen == {"ListFragments", "GetDataEndpoint"}


def test_getclip_quota_1tps(srv):
    """GetClip (MEDIA's API) is routed through CORE's per-stream quota: 1 TPS. Counted, not timed:
    rounds of 3 GetClip calls sent at once (all within one second unless the machine stalls)
    until a round is throttled; the server's counters must agree with what the client saw, and
    no second of arrivals may hold more than one accepted call."""
    am = boto3_client(srv, "kinesis-video-archived-media")
    sel = {"FragmentSelectorType": "SERVER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": time.time() - 3600, "EndTimestamp": time.time()}}
    before = srv.counters().get("GetClip", {})
    codes = []
    lock = threading.Lock()

    def one():
        try:
            am.get_clip(StreamName="ops", ClipFragmentSelector=sel)["Payload"].read()
            r = "ok"
        except ClientError as e:
            r = e.response["Error"]["Code"]
        with lock:
            codes.append(r)
    for _ in range(5):
        ts = [threading.Thread(target=one) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if "ClientLimitExceededException" in codes:
            break
    after = srv.counters()["GetClip"]
    throttled = codes.count("ClientLimitExceededException")
    assert set(codes) <= {"ok", "ClientLimitExceededException"}, codes
    assert throttled >= 1, codes
    assert after["total"] - before.get("total", 0) == len(codes)
    assert after["throttled"] - before.get("throttled", 0) == throttled
    # every round of 3 got at most one through (1 TPS): a round is sent within one second
    assert codes.count("ok") <= len(codes) // 3, codes


def test_throttling_aws_cli(srv):
    results = [aws_cli(srv, "kinesisvideo", "describe-stream", "--stream-name", "ops", check=False)
               for _ in range(3)]
    # the CLI is slow to start; force throttling through the admin fault switch instead of timing
    srv.faults({"DescribeStream": {"throttle_next": 1}})
    p = aws_cli(srv, "kinesisvideo", "describe-stream", "--stream-name", "ops", check=False)
    assert p.returncode != 0 and b"ClientLimitExceededException" in p.stderr
    assert all(r.returncode == 0 for r in results)


def test_gmffl_concurrent_connection_limit(srv):
    am = boto3_client(srv, "kinesis-video-archived-media")
    nums = [f["FragmentNumber"] for f in am.list_fragments(StreamName="ops")["Fragments"]]
    srv.faults({"GetMediaForFragmentList": {"slow_rate": 1.0, "slow_chunk_bytes": 16384, "slow_delay_ms": 150}})
    time.sleep(1.05)
    out = []

    def one():
        c = boto3_client(srv, "kinesis-video-archived-media")
        try:
            out.append(len(c.get_media_for_fragment_list(StreamName="ops", Fragments=nums)["Payload"].read()))
        except ClientError as e:
            out.append(e.response["Error"]["Message"])
    ts = [threading.Thread(target=one) for _ in range(5)]
    for t in ts:
        t.start()
    time.sleep(1.1)  # new TPS window, 5 bodies still streaming
    with pytest.raises(ClientError) as e:
        am.get_media_for_fragment_list(StreamName="ops", Fragments=nums)
    assert code(e) == "ClientLimitExceededException" and "concurrent" in e.value.response["Error"]["Message"]
    for t in ts:
        t.join(30)
    assert len(out) == 5 and all(isinstance(x, int) and x > 0 for x in out)


def test_fault_errors_latency_and_counters(srv):
    kv = boto3_client(srv, "kinesisvideo")
    srv.reset_counters()
    srv.faults({"DescribeStream": {"error_next": 2}})
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            kv.describe_stream(StreamName="ops")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert code(e) == "InternalFailure"
    kv.describe_stream(StreamName="ops")
    srv.faults({"ListStreams": {"throttle_rate": 1.0}})
    with pytest.raises(ClientError) as e:
        kv.list_streams()
    assert code(e) == "ClientLimitExceededException"
    srv.faults({"ListStreams": {}, "*": {"latency_ms": 300}})
    t0 = time.monotonic()
    kv.list_streams()
    assert time.monotonic() - t0 >= 0.3
    srv.faults({"*": {}, "GetDataEndpoint": {"error_rate": 1.0, "error_status": 503}})
    with pytest.raises(ClientError) as e:
        kv.get_data_endpoint(StreamName="ops", APIName="PUT_MEDIA")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    c = srv.counters()
    assert c["DescribeStream"]["total"] == 3 and c["DescribeStream"]["errors"] == 2
    assert c["DescribeStream"]["streams"] == {"ops": 3}
    assert c["ListStreams"]["total"] == 2 and c["ListStreams"]["throttled"] == 1
    assert c["GetDataEndpoint"]["streams"] == {"ops": 1}
    srv.reset_counters()
    assert srv.counters() == {}


def test_fault_error_type_404_as_the_service_or_a_bare_proxy_answers(srv):
    """error_status 404 answers ResourceNotFoundException (the service's 404); error_type sets
    another type, and "" none at all (a bare 404, as from a proxy or a wrong endpoint)."""
    am = boto3_client(srv, "kinesis-video-archived-media")
    try:
        srv.faults({"ListFragments": {"error_rate": 1.0, "error_status": 404}})
        with pytest.raises(ClientError) as e:
            am.list_fragments(StreamName="ops")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert code(e) == "ResourceNotFoundException"
        srv.faults({"ListFragments": {"error_type": ""}})
        with pytest.raises(ClientError) as e:
            am.list_fragments(StreamName="ops")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert code(e) == "404"  # botocore falls back to the status: no type was sent
        assert "x-amzn-errortype" not in e.value.response["ResponseMetadata"]["HTTPHeaders"]
        srv.faults({"ListFragments": {"error_type": "InvalidArgumentException", "error_status": 400}})
        with pytest.raises(ClientError) as e:
            am.list_fragments(StreamName="ops")
        assert code(e) == "InvalidArgumentException"
    finally:
        srv.faults({"ListFragments": {}})
    assert am.list_fragments(StreamName="ops")["Fragments"]


def test_fault_reset_and_slow_body(srv):
    am = boto3_client(srv, "kinesis-video-archived-media")
    nums = sorted(f["FragmentNumber"] for f in am.list_fragments(StreamName="ops")["Fragments"])
    full = am.get_media_for_fragment_list(StreamName="ops", Fragments=nums)["Payload"].read()
    srv.faults({"GetMediaForFragmentList": {"reset_next": 1, "reset_after_bytes": 50000}})
    got = b""
    with pytest.raises(Exception):
        r = am.get_media_for_fragment_list(StreamName="ops", Fragments=nums)
        while True:
            b = r["Payload"].read(4096)
            if not b:
                break
            got += b
    assert len(got) <= 50000
    srv.faults({"GetMediaForFragmentList": {"slow_next": 1, "slow_chunk_bytes": 16384, "slow_delay_ms": 100}})
    time.sleep(1.05)
    t0 = time.monotonic()
    slow = am.get_media_for_fragment_list(StreamName="ops", Fragments=nums)["Payload"].read()
    assert slow == full and time.monotonic() - t0 >= 0.1 * (len(full) // 16384)


def test_fault_option_at_start(kvs_server):
    s = kvs_server(fault=["ListStreams:error_next=1", "*:latency_ms=10"])
    kv = boto3_client(s, "kinesisvideo")
    with pytest.raises(ClientError) as e:
        kv.list_streams()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert kv.list_streams()["StreamInfoList"] == []
    assert s.admin_get("faults")["*"] == {"latency_ms": 10.0}


def test_eight_concurrent_clients(kvs_server):
    s = kvs_server(no_quotas=True)
    errors = []
    results = {}

    def client(i):
        try:
            name = f"c{i}"
            r = s.seed_testsrc(name, duration=4)  # 8 PutMedia connections at once
            assert len(r.by_type("PERSISTED")) == 2
            am = boto3_client(s, "kinesis-video-archived-media")
            kv = boto3_client(s, "kinesisvideo")
            for _ in range(5):
                kv.describe_stream(StreamName=name)
                frs = am.list_fragments(StreamName=name)["Fragments"]
                data = am.get_media_for_fragment_list(StreamName=name,
                                                      Fragments=[f["FragmentNumber"] for f in frs])["Payload"].read()
                assert len(split_documents(data)) == 2
            results[i] = True
        except Exception as e:  # noqa
            errors.append(repr(e))
    ts = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors and len(results) == 8
    print(f"8 concurrent clients: {time.monotonic() - t0:.2f} s")


def test_restart_keeps_data(kvs_server):
    s = kvs_server(no_quotas=True)
    s.seed_testsrc("keep", duration=4)
    kv = boto3_client(s, "kinesisvideo")
    kv.tag_stream(StreamName="keep", Tags={"t": "1"})
    am = boto3_client(s, "kinesis-video-archived-media")
    before = sorted(am.list_fragments(StreamName="keep")["Fragments"], key=lambda f: f["FragmentNumber"])
    nums = [f["FragmentNumber"] for f in before]
    data = am.get_media_for_fragment_list(StreamName="keep", Fragments=nums)["Payload"].read()
    info = kv.describe_stream(StreamName="keep")["StreamInfo"]
    s.restart()
    kv = boto3_client(s, "kinesisvideo")
    am = boto3_client(s, "kinesis-video-archived-media")
    assert kv.describe_stream(StreamName="keep")["StreamInfo"] == info
    assert kv.list_tags_for_stream(StreamName="keep")["Tags"] == {"t": "1"}
    after = sorted(am.list_fragments(StreamName="keep")["Fragments"], key=lambda f: f["FragmentNumber"])
    assert after == before
    assert am.get_media_for_fragment_list(StreamName="keep", Fragments=nums)["Payload"].read() == data
    r = s.seed_testsrc("keep", duration=2, start_ts=time.time())
    assert r.by_type("PERSISTED")[0]["FragmentNumber"] > nums[-1]  # numbers keep increasing


def test_seed_file_mp4_and_h265(srv, tmp_path):
    mp4 = tmp_path / "in.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4",
                    "-f", "lavfi", "-i", "sine=duration=4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "100",
                    "-c:a", "aac", "-shortest", str(mp4)], check=True)
    r = srv.seed_file("ops-file", str(mp4))
    assert len(r.by_type("PERSISTED")) == 2 and not r.by_type("ERROR")
    r = srv.seed_testsrc("ops-h265", duration=4, codec="h265", audio=True)
    assert len(r.by_type("PERSISTED")) == 2 and not r.by_type("ERROR")
    am = boto3_client(srv, "kinesis-video-archived-media")
    time.sleep(1.05)
    frs = am.list_fragments(StreamName="ops-h265")["Fragments"]
    data = am.get_media_for_fragment_list(StreamName="ops-h265", Fragments=[f["FragmentNumber"] for f in frs])["Payload"].read()
    for i, d in enumerate(split_documents(data)):
        p = tmp_path / f"h{i}.mkv"
        p.write_bytes(d)
        pr = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(p)],
                            stdout=subprocess.PIPE)
        assert pr.stdout.split() == [b"hevc", b"aac"]
        assert subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-f", "null", "-"]).returncode == 0


def test_seed_cli_and_launcher(kvs_server, srv):
    # the launcher returns once the server wrote its port and answers: one ready line, naming
    # the port the launcher found, and a health answer (no start-up time is asserted)
    s = kvs_server()
    ready = [l for l in s.log().splitlines() if "kvs-local listening on" in l]
    assert len(ready) == 1, s.log()
    assert f"http://127.0.0.1:{s.port}" in ready[0] and s.url == f"http://127.0.0.1:{s.port}"
    assert s.admin_get("health") is not None
    p = subprocess.run([os.path.join(REPO, "scripts", "kvs-local"), "seed", "testsrc", "--url", srv.url,
                        "--stream", "ops-cli", "--duration", "4", "--audio"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["received"] == 2


def test_live_camera(srv):
    live = srv.seed_live("ops-live")
    try:
        deadline = time.monotonic() + 15
        while live.persisted() < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        live.stop()
    acks = [a for a in live.acks if a["EventType"] == "PERSISTED"]
    assert len(acks) >= 3
    am = boto3_client(srv, "kinesis-video-archived-media")
    frs = sorted(am.list_fragments(StreamName="ops-live")["Fragments"], key=lambda f: f["FragmentNumber"])
    sts = [f["ServerTimestamp"].timestamp() for f in frs[:3]]  # (the last one may be ffmpeg's flush on stop)
    gaps = [b - a for a, b in zip(sts, sts[1:])]
    assert len(gaps) == 2 and all(1.5 < g < 2.6 for g in gaps), gaps  # produced in real time
    assert all(abs(f["FragmentLengthInMilliseconds"] - 2000) <= 40 for f in frs[:-1])


def test_bulk_300k_under_a_minute(kvs_server, tmp_path):
    s = kvs_server(no_quotas=True)
    t0 = time.monotonic()
    now = int(time.time())
    res = s.seed_bulk("week", count=302400, start_ts=now - 302400 * 2 - 60)  # 7 days of 2 s fragments
    took = time.monotonic() - t0
    print(f"bulk: 302400 fragments in {took:.1f} s (clone step {res['seconds']} s)")
    assert res["count"] == 302400 and took < 60
    am = boto3_client(s, "kinesis-video-archived-media")
    sel = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": now - 120, "EndTimestamp": now}}
    last = am.list_fragments(StreamName="week", FragmentSelector=sel)["Fragments"]
    assert len(last) == 30
    n = max(last, key=lambda f: f["ProducerTimestamp"])
    doc = am.get_media_for_fragment_list(StreamName="week", Fragments=[n["FragmentNumber"]])["Payload"].read()
    p = tmp_path / "last.mkv"
    p.write_bytes(doc)
    assert subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-f", "null", "-"]).returncode == 0
    seg = [e for e in mkv.walk_documents(doc) if e.id == mkv.SEGMENT][0]
    cl = [c for c in seg.children if c.id == mkv.CLUSTER][0]
    tc = [c for c in cl.children if c.id == mkv.TIMECODE][0]
    assert mkv.read_uint(doc[tc.data_offset:tc.end]) == 302399 * 2000
    assert s.admin_get("streams")["streams"][0]["fragments"] == 302400


def test_admin_seed_commands(srv):
    r = srv.admin({"mode": "testsrc", "stream": "ops-adm", "duration": 4}, "seed")
    assert [a["EventType"] for a in r["acks"]].count("PERSISTED") == 2
    live = srv.admin({"mode": "live", "stream": "ops-adm-live"}, "seed")
    time.sleep(2.5)
    # GetMedia NOW: starts with the next fragment that arrives
    med = boto3_client(srv, "kinesis-video-media")
    body = med.get_media(StreamName="ops-adm-live", StartSelector={"StartSelectorType": "NOW"})["Payload"]
    first = body.read(100000)
    stop = srv.admin({"id": live["id"]}, "seed/stop")
    rest = body.read()
    assert stop["fragments"] >= 1
    docs = split_documents(first + rest)
    assert len(docs) >= 1
    with pytest.raises(Exception):
        srv.admin({"mode": "nope", "stream": "x"}, "seed")
    st = {x["name"]: x for x in srv.admin_get("streams")["streams"]}
    assert st["ops-adm"]["fragments"] == 2
