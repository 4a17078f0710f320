"""kvs-local DescribeStreamStorageConfiguration / UpdateStreamStorageConfiguration, with the shapes
and errors of botocore 1.43's kinesisvideo model (Debian's botocore 1.29 lacks the calls, so the
requests are signed by hand like the seeding producer's control calls)."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from kvs_local import seed  # noqa: E402
from kvs_local.testing import boto3_client, start_server  # noqa: E402


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("kvs-storage"), no_quotas=True)
    try:
        yield s
    finally:
        s.stop()


def call(srv, path, body):
    return seed._signed_json(srv.url, path, body, srv.access_key, srv.secret_key, srv.region)


def test_default_tier_is_hot_and_update_needs_the_version(srv):
    srv.create_stream("tiered", retention_hours=24)
    r = call(srv, "/describeStreamStorageConfiguration", {"StreamName": "tiered"})
    assert r["StreamName"] == "tiered" and ":stream/tiered/" in r["StreamARN"]
    assert r["StreamStorageConfiguration"] == {"DefaultStorageTier": "HOT"}
    kv = boto3_client(srv, "kinesisvideo")
    v0 = kv.describe_stream(StreamName="tiered")["StreamInfo"]["Version"]
    with pytest.raises(seed.PutMediaError) as e:
        call(srv, "/updateStreamStorageConfiguration",
             {"StreamName": "tiered", "CurrentVersion": "stale0",
              "StreamStorageConfiguration": {"DefaultStorageTier": "WARM"}})
    assert e.value.status == 400 and "VersionMismatchException" in e.value.type_
    with pytest.raises(seed.PutMediaError) as e:
        call(srv, "/updateStreamStorageConfiguration",
             {"StreamName": "tiered", "CurrentVersion": v0,
              "StreamStorageConfiguration": {"DefaultStorageTier": "COLD"}})
    assert "InvalidArgumentException" in e.value.type_
    assert call(srv, "/updateStreamStorageConfiguration",
                {"StreamName": "tiered", "CurrentVersion": v0,
                 "StreamStorageConfiguration": {"DefaultStorageTier": "WARM"}}) == {}
    r = call(srv, "/describeStreamStorageConfiguration", {"StreamName": "tiered"})
    assert r["StreamStorageConfiguration"]["DefaultStorageTier"] == "WARM"
    assert kv.describe_stream(StreamName="tiered")["StreamInfo"]["Version"] != v0


def test_create_with_a_tier_and_unknown_stream(srv):
    call(srv, "/createStream", {"StreamName": "warmcam", "DataRetentionInHours": 1,
                                "StreamStorageConfiguration": {"DefaultStorageTier": "WARM"}})
    r = call(srv, "/describeStreamStorageConfiguration", {"StreamName": "warmcam"})
    assert r["StreamStorageConfiguration"]["DefaultStorageTier"] == "WARM"
    with pytest.raises(seed.PutMediaError) as e:
        call(srv, "/describeStreamStorageConfiguration", {"StreamName": "nosuch"})
    assert e.value.status == 404 and "ResourceNotFoundException" in e.value.type_
    assert json.loads(e.value.body)["Message"]
