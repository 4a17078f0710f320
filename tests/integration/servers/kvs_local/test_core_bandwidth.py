"""kvs-local's bandwidth limit of GetMediaForFragmentList responses (25 MB/s per response, the
documented service limit; on with the quotas, set with --media-bandwidth or the admin config key
media_bandwidth, 0 = unlimited), driven with boto3.

The counters' "paced" counts the responses written under the limit; "batches" the fragment count
of each call. The one time check is a lower bound the server's own pacing guarantees (a response
of B bytes at R bytes/s cannot end before B/R s), never an upper bound.
"""
import time

import pytest

from kvs_local.testing import boto3_client, retry_throttled

N = 40


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    s = kvs_servers.start(request)  # quotas on: the bandwidth limit with them
    s.seed_bulk("bw", count=N, start_ts=time.time() - 3600, retention_hours=24)
    return s


@pytest.fixture(scope="module")
def numbers(srv):
    am = boto3_client(srv, "kinesis-video-archived-media")
    frs = retry_throttled(am.list_fragments, StreamName="bw", MaxResults=1000)["Fragments"]
    frs.sort(key=lambda f: f["ProducerTimestamp"])
    assert len(frs) == N
    return [f["FragmentNumber"] for f in frs]


def fetch(srv, numbers):
    am = boto3_client(srv, "kinesis-video-archived-media")
    t = time.monotonic()
    body = retry_throttled(am.get_media_for_fragment_list, StreamName="bw",
                           Fragments=numbers)["Payload"].read()
    return body, time.monotonic() - t


def paced(srv):
    return srv.counters().get("GetMediaForFragmentList", {}).get("paced", 0)


def test_default_is_25_mb_per_second_with_quotas(srv, numbers):
    cfg = srv.config()
    assert cfg["quotas"] is True and cfg["media_bandwidth"] == 25_000_000
    srv.reset_counters()
    body, _ = fetch(srv, numbers)
    assert len(body) > 0
    c = srv.counters()["GetMediaForFragmentList"]
    assert c["paced"] == 1 and c["batches"] == [N]


def test_a_lower_rate_holds_the_response_back(srv, numbers):
    srv.config(media_bandwidth=2_000_000)
    try:
        body, elapsed = fetch(srv, numbers)
    finally:
        srv.config(media_bandwidth=25_000_000)
    # the server sleeps so that it is never ahead of the rate: a lower bound only
    assert elapsed >= len(body) / 2_000_000 * 0.95


def test_switched_off_by_zero_or_without_quotas(srv, numbers):
    srv.reset_counters()
    srv.config(media_bandwidth=0)
    try:
        fetch(srv, numbers[:5])
    finally:
        srv.config(media_bandwidth=25_000_000)
    srv.config(quotas=False)
    try:
        fetch(srv, numbers[:5])
    finally:
        srv.config(quotas=True)
    assert paced(srv) == 0
    assert srv.counters()["GetMediaForFragmentList"]["total"] == 2


def test_command_line_option(kvs_server):
    assert kvs_server(media_bandwidth=0).config()["media_bandwidth"] == 0
