"""Fixtures of the kvs-local suites (the fake KVS server is what they test).

- `srv`: the kvs-local under test for the module, quotas off; a module that needs other options
  (the service's quotas, faults, timings) overrides it with kvs_servers.start(request, ...).
- `kv`, `am`: boto3 clients of srv (kinesisvideo, kinesis-video-archived-media; no retries).
- `start_ts`: where the media suites seed their streams: two minutes ago, in whole seconds
  (botocore sends timestamps as whole epoch seconds).
"""
import time

import pytest

from kvs_local.testing import boto3_client


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    return kvs_servers.start(request, no_quotas=True)


@pytest.fixture(scope="module")
def kv(srv):
    return boto3_client(srv, "kinesisvideo")


@pytest.fixture(scope="module")
def am(srv):
    return boto3_client(srv, "kinesis-video-archived-media")


@pytest.fixture(scope="module")
def start_ts():
    return float(int(time.time()) - 120)
