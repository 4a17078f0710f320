"""kvs-local control plane, driven with boto3 and /usr/bin/aws."""
import json
import time

import pytest

from kvs_local.testing import aws_cli, boto3_client

from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    return kvs_servers.start(request, no_quotas=True, getmedia_idle_seconds=0.5)


def err(excinfo):
    e = excinfo.value
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Message", "")


def test_create_describe_shapes(kv, srv):
    t0 = time.time()
    arn = kv.create_stream(StreamName="ctl-a", MediaType="video/h264", DataRetentionInHours=24,
                           DeviceName="cam", Tags={"k": "v"})["StreamARN"]
    assert arn.startswith("arn:aws:kinesisvideo:us-east-1:") and ":stream/ctl-a/" in arn
    info = kv.describe_stream(StreamName="ctl-a")["StreamInfo"]
    assert info["StreamName"] == "ctl-a" and info["StreamARN"] == arn
    assert info["Status"] == "ACTIVE" and info["DataRetentionInHours"] == 24
    assert info["MediaType"] == "video/h264" and info["DeviceName"] == "cam"
    assert len(info["Version"]) == 20 and info["Version"].isalnum()
    assert abs(info["CreationTime"].timestamp() - t0) < 5
    assert info["KmsKeyId"].endswith("alias/aws/kinesisvideo")
    assert kv.describe_stream(StreamARN=arn)["StreamInfo"]["StreamName"] == "ctl-a"
    # the ARN digits are the creation time in ms
    assert abs(int(arn.rsplit("/", 1)[1]) / 1000 - info["CreationTime"].timestamp()) < 0.002
    # wire format: epoch seconds as a JSON number, explicit nulls
    raw = json.loads(aws_cli(srv, "kinesisvideo", "describe-stream", "--stream-name", "ctl-a",
                             "--cli-read-timeout", "10").stdout)
    assert raw["StreamInfo"]["StreamName"] == "ctl-a"


def test_create_errors(kv):
    kv.create_stream(StreamName="ctl-dup")
    with pytest.raises(ClientError) as e:
        kv.create_stream(StreamName="ctl-dup")
    assert err(e)[:2] == ("ResourceInUseException", 400)
    with pytest.raises(ClientError) as e:
        kv.create_stream(StreamName="bad name!")
    assert err(e)[:2] == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as e:
        kv.create_stream(StreamName="ctl-tags", Tags={f"k{i}": "v" for i in range(51)})
    assert err(e)[0] in ("TagsPerResourceExceededLimitException", "InvalidArgumentException")


def test_not_found_everywhere(kv):
    arn = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/nope/1"
    calls = [lambda: kv.describe_stream(StreamName="nope"),
             lambda: kv.delete_stream(StreamARN=arn),
             lambda: kv.update_stream(StreamName="nope", CurrentVersion="abc"),
             lambda: kv.update_data_retention(StreamName="nope", CurrentVersion="abc",
                                              Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=1),
             lambda: kv.get_data_endpoint(StreamName="nope", APIName="LIST_FRAGMENTS"),
             lambda: kv.tag_stream(StreamName="nope", Tags={"a": "b"}),
             lambda: kv.untag_stream(StreamName="nope", TagKeyList=["a"]),
             lambda: kv.list_tags_for_stream(StreamName="nope")]
    for c in calls:
        with pytest.raises(ClientError) as e:
            c()
        code, status, msg = err(e)
        assert (code, status) == ("ResourceNotFoundException", 404)
        assert msg


def test_list_streams_pagination_and_prefix(kv, srv):
    for i in range(23):
        kv.create_stream(StreamName=f"pg-{i:02d}")
    kv.create_stream(StreamName="other-1")
    names = []
    token = None
    pages = 0
    while True:
        kw = {"MaxResults": 5, "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "pg-"}}
        if token:
            kw["NextToken"] = token
        r = kv.list_streams(**kw)
        pages += 1
        assert len(r["StreamInfoList"]) <= 5
        names += [s["StreamName"] for s in r["StreamInfoList"]]
        token = r.get("NextToken")
        if not token:
            break
    assert pages == 5 and names == [f"pg-{i:02d}" for i in range(23)]
    # boto3 paginator
    pag = kv.get_paginator("list_streams")
    got = [s["StreamName"] for p in pag.paginate(PaginationConfig={"PageSize": 4}) for s in p["StreamInfoList"]]
    assert "other-1" in got and len(got) == len(set(got)) and set(names) <= set(got)
    # aws cli auto-paginates with --page-size
    out = json.loads(aws_cli(srv, "kinesisvideo", "list-streams", "--page-size", "3",
                             "--stream-name-condition", "ComparisonOperator=BEGINS_WITH,ComparisonValue=pg-1").stdout)
    assert [s["StreamName"] for s in out["StreamInfoList"]] == [f"pg-{i}" for i in range(10, 20)]
    with pytest.raises(ClientError) as e:
        kv.list_streams(MaxResults=5, NextToken="!!notatoken")
    assert err(e)[0] == "InvalidArgumentException"


def test_delete_version_guard(kv):
    arn = kv.create_stream(StreamName="ctl-del")["StreamARN"]
    with pytest.raises(ClientError) as e:
        kv.delete_stream(StreamARN=arn, CurrentVersion="stale0000")
    assert err(e)[:2] == ("VersionMismatchException", 400)
    v = kv.describe_stream(StreamARN=arn)["StreamInfo"]["Version"]
    kv.delete_stream(StreamARN=arn, CurrentVersion=v)
    with pytest.raises(ClientError) as e:
        kv.describe_stream(StreamName="ctl-del")
    assert err(e)[0] == "ResourceNotFoundException"
    # name can be reused, new ARN
    arn2 = kv.create_stream(StreamName="ctl-del")["StreamARN"]
    kv.delete_stream(StreamARN=arn2)


def test_update_stream_and_retention_delta(kv):
    kv.create_stream(StreamName="ctl-upd", DataRetentionInHours=10)
    v1 = kv.describe_stream(StreamName="ctl-upd")["StreamInfo"]["Version"]
    kv.update_stream(StreamName="ctl-upd", CurrentVersion=v1, MediaType="video/h265", DeviceName="d2")
    i2 = kv.describe_stream(StreamName="ctl-upd")["StreamInfo"]
    assert i2["MediaType"] == "video/h265" and i2["DeviceName"] == "d2" and i2["Version"] != v1
    with pytest.raises(ClientError) as e:
        kv.update_stream(StreamName="ctl-upd", CurrentVersion=v1, MediaType="video/h264")
    assert err(e)[0] == "VersionMismatchException"
    kv.update_data_retention(StreamName="ctl-upd", CurrentVersion=i2["Version"],
                             Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=5)
    i3 = kv.describe_stream(StreamName="ctl-upd")["StreamInfo"]
    assert i3["DataRetentionInHours"] == 15
    kv.update_data_retention(StreamName="ctl-upd", CurrentVersion=i3["Version"],
                             Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=12)
    i4 = kv.describe_stream(StreamName="ctl-upd")["StreamInfo"]
    assert i4["DataRetentionInHours"] == 3
    with pytest.raises(ClientError) as e:
        kv.update_data_retention(StreamName="ctl-upd", CurrentVersion=i4["Version"],
                                 Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=4)
    assert err(e)[0] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kv.update_data_retention(StreamName="ctl-upd", CurrentVersion="old",
                                 Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=1)
    assert err(e)[0] == "VersionMismatchException"


def test_retention_replace_semantics_switch(kv, srv):
    srv.config(retention_semantics="replace")
    try:
        kv.create_stream(StreamName="ctl-rep", DataRetentionInHours=10)
        v = kv.describe_stream(StreamName="ctl-rep")["StreamInfo"]["Version"]
        kv.update_data_retention(StreamName="ctl-rep", CurrentVersion=v, Operation="INCREASE_DATA_RETENTION",
                                 DataRetentionChangeInHours=30)
        assert kv.describe_stream(StreamName="ctl-rep")["StreamInfo"]["DataRetentionInHours"] == 30
    finally:
        srv.config(retention_semantics="delta")


def test_get_data_endpoint(kv, srv):
    kv.create_stream(StreamName="ctl-ep")
    for api in ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
                "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES"]:
        assert kv.get_data_endpoint(StreamName="ctl-ep", APIName=api)["DataEndpoint"] == srv.url
    out = json.loads(aws_cli(srv, "kinesisvideo", "get-data-endpoint", "--stream-name", "ctl-ep",
                             "--api-name", "LIST_FRAGMENTS").stdout)
    assert out["DataEndpoint"] == srv.url


def test_tags(kv, srv):
    arn = kv.create_stream(StreamName="ctl-tag", Tags={"a": "1"})["StreamARN"]
    kv.tag_stream(StreamARN=arn, Tags={"b": "2", "c": ""})
    assert kv.list_tags_for_stream(StreamName="ctl-tag")["Tags"] == {"a": "1", "b": "2", "c": ""}
    kv.untag_stream(StreamName="ctl-tag", TagKeyList=["a", "c"])
    assert kv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"b": "2"}
    with pytest.raises(ClientError) as e:
        kv.tag_stream(StreamName="ctl-tag", Tags={f"x{i}": "v" for i in range(50)})
    assert err(e)[0] == "TagsPerResourceExceededLimitException"
    out = json.loads(aws_cli(srv, "kinesisvideo", "list-tags-for-stream", "--stream-name", "ctl-tag").stdout)
    assert out["Tags"] == {"b": "2"}


def test_aws_cli_lifecycle_and_errors(srv):
    out = json.loads(aws_cli(srv, "kinesisvideo", "create-stream", "--stream-name", "cli-1",
                             "--data-retention-in-hours", "2").stdout)
    assert out["StreamARN"].endswith(out["StreamARN"].rsplit("/", 1)[1])
    p = aws_cli(srv, "kinesisvideo", "describe-stream", "--stream-name", "cli-missing", check=False)
    assert p.returncode != 0 and b"ResourceNotFoundException" in p.stderr
    p = aws_cli(srv, "kinesisvideo", "create-stream", "--stream-name", "cli-1", check=False)
    assert p.returncode != 0 and b"ResourceInUseException" in p.stderr
    aws_cli(srv, "kinesisvideo", "delete-stream", "--stream-arn", out["StreamARN"])


def test_creating_period(kvs_server):
    s = kvs_server(creating_seconds=0.5)
    kv = boto3_client(s, "kinesisvideo")
    kv.create_stream(StreamName="slow")
    assert kv.describe_stream(StreamName="slow")["StreamInfo"]["Status"] == "CREATING"
    time.sleep(0.6)
    assert kv.describe_stream(StreamName="slow")["StreamInfo"]["Status"] == "ACTIVE"


def test_list_streams_default_page_is_10(kv):
    for i in range(12):
        kv.create_stream(StreamName=f"dp-{i:02d}")
    r = kv.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "dp-"})
    assert len(r["StreamInfoList"]) == 10 and r["NextToken"]
    r2 = kv.list_streams(NextToken=r["NextToken"],
                         StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "dp-"})
    assert [s["StreamName"] for s in r2["StreamInfoList"]] == ["dp-10", "dp-11"] and not r2.get("NextToken")


def test_not_authorized_and_bad_arn(kv, srv):
    kv.create_stream(StreamName="ctl-deny")
    srv.faults({"DescribeStream": {"deny_next": 1}})
    try:
        with pytest.raises(ClientError) as e:
            kv.describe_stream(StreamName="ctl-deny")
        code, status, msg = err(e)
        assert (code, status) == ("NotAuthorizedException", 401) and "not authorized" in msg
        kv.describe_stream(StreamName="ctl-deny")
    finally:
        srv.clear_faults()
    with pytest.raises(ClientError) as e:
        kv.tag_stream(StreamARN="arn:aws:kinesisvideo:us-east-1:123456789012:notastream", Tags={"a": "b"})
    assert err(e)[:2] == ("InvalidResourceFormatException", 400)
    with pytest.raises(ClientError) as e:
        kv.describe_stream(StreamARN="arn:aws:kinesisvideo:us-east-1:123456789012:notastream")
    assert err(e)[:2] == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as e:
        kv.get_data_endpoint(StreamName="ctl-deny", APIName="NOT_AN_API")
    assert err(e)[:2] == ("InvalidArgumentException", 400)


def test_account_stream_limit(kvs_server):
    s = kvs_server(max_streams=2)
    kv = boto3_client(s, "kinesisvideo")
    kv.create_stream(StreamName="a")
    kv.create_stream(StreamName="b")
    with pytest.raises(ClientError) as e:
        kv.create_stream(StreamName="c")
    assert err(e)[:2] == ("AccountStreamLimitExceededException", 400)


def test_aws_cli_updates_tags_and_get_media(srv, tmp_path):
    """The remaining control-plane calls and GetMedia through /usr/bin/aws."""
    arn = json.loads(aws_cli(srv, "kinesisvideo", "create-stream", "--stream-name", "cli-2",
                             "--data-retention-in-hours", "5").stdout)["StreamARN"]
    v = json.loads(aws_cli(srv, "kinesisvideo", "describe-stream", "--stream-arn", arn).stdout)["StreamInfo"]["Version"]
    aws_cli(srv, "kinesisvideo", "update-stream", "--stream-name", "cli-2", "--current-version", v,
            "--media-type", "video/h264")
    info = json.loads(aws_cli(srv, "kinesisvideo", "describe-stream", "--stream-name", "cli-2").stdout)["StreamInfo"]
    assert info["MediaType"] == "video/h264" and info["Version"] != v
    aws_cli(srv, "kinesisvideo", "update-data-retention", "--stream-name", "cli-2", "--current-version",
            info["Version"], "--operation", "INCREASE_DATA_RETENTION", "--data-retention-change-in-hours", "3")
    p = aws_cli(srv, "kinesisvideo", "update-data-retention", "--stream-name", "cli-2", "--current-version",
                info["Version"], "--operation", "INCREASE_DATA_RETENTION", "--data-retention-change-in-hours", "3",
                check=False)
    assert p.returncode != 0 and b"VersionMismatchException" in p.stderr
    aws_cli(srv, "kinesisvideo", "tag-stream", "--stream-arn", arn, "--tags", "team=video,env=test")
    aws_cli(srv, "kinesisvideo", "untag-stream", "--stream-arn", arn, "--tag-key-list", "env")
    out = json.loads(aws_cli(srv, "kinesisvideo", "list-tags-for-stream", "--stream-arn", arn).stdout)
    assert out["Tags"] == {"team": "video"}
    srv.seed_testsrc("cli-2", duration=4, create=False)
    outfile = tmp_path / "gm.mkv"
    r = json.loads(aws_cli(srv, "kinesis-video-media", "get-media", "--stream-name", "cli-2", "--start-selector",
                           "StartSelectorType=EARLIEST", str(outfile)).stdout)
    assert r["ContentType"] == "video/webm"
    from kvs_local.testing import kvs_layout
    assert len(kvs_layout(outfile.read_bytes())) == 2
