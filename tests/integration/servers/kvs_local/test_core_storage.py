"""kvs-local DescribeStreamStorageConfiguration / UpdateStreamStorageConfiguration, with the shapes
and errors of botocore 1.43's kinesisvideo model (Debian's botocore 1.29 lacks the calls, so the
requests are signed by hand like the seeding producer's control calls)."""
import json

import pytest

from kvs_local import seed
from kvs_local.testing import boto3_client


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    return kvs_servers.start(request, no_quotas=True)


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
