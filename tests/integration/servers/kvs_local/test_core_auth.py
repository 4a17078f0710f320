"""SigV4 verification of kvs-local: real clients with wrong credentials, stale dates, session tokens,
and the AWS SigV4 test-suite vectors against our signer/verifier."""
import datetime as dt
import glob
import hashlib
import json
import os
import subprocess
import urllib.request

import pytest

from kvs_local import sigv4
from kvs_local.errors import KvsError
from kvs_local.testing import aws_cli_env, boto3_client

import boto3
from botocore.exceptions import ClientError

SUITE = "/work/shared/testdata/sigv4-suite/aws-sig-v4-test-suite"


@pytest.fixture(scope="module")
def srv(kvs_servers, request):
    s = kvs_servers.start(request, no_quotas=True)
    boto3_client(s, "kinesisvideo").create_stream(StreamName="auth-s")
    return s


def client(srv, ak=None, sk=None, token=None, service="kinesisvideo"):
    return boto3.client(service, endpoint_url=srv.url, region_name="us-east-1",
                        aws_access_key_id=ak or srv.access_key, aws_secret_access_key=sk or srv.secret_key,
                        aws_session_token=token)


def test_good_credentials(srv):
    assert client(srv).describe_stream(StreamName="auth-s")["StreamInfo"]["StreamName"] == "auth-s"


def test_wrong_access_key(srv):
    with pytest.raises(ClientError) as e:
        client(srv, ak="AKIDWRONG").describe_stream(StreamName="auth-s")
    r = e.value.response
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert r["Error"]["Code"] == "UnrecognizedClientException"
    assert "security token included in the request is invalid" in r["Error"]["Message"]


def test_wrong_secret(srv):
    with pytest.raises(ClientError) as e:
        client(srv, sk="wrongsecret").list_streams()
    r = e.value.response
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert r["Error"]["Code"] == "InvalidSignatureException"
    assert r["Error"]["Message"].startswith("The request signature we calculated does not match the signature "
                                            "you provided.")
    with pytest.raises(ClientError) as e:
        client(srv, sk="wrongsecret", service="kinesis-video-archived-media").list_fragments(StreamName="auth-s")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _manual(srv, when, secret=None, path="/describeStream", body=b'{"StreamName":"auth-s"}'):
    url = srv.url + path
    h = sigv4.sign_headers("POST", url, {"Content-Type": "application/json"}, srv.access_key, secret or srv.secret_key,
                           "us-east-1", body=body, now=when, exclude=("authorization", "content-length"))
    req = urllib.request.Request(url, data=body, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_stale_and_future_date(srv):
    now = dt.datetime.now(dt.timezone.utc)
    st, h, b = _manual(srv, now)
    assert st == 200 and b["StreamInfo"]["StreamName"] == "auth-s"
    st, h, b = _manual(srv, now - dt.timedelta(minutes=4))
    assert st == 200
    st, h, b = _manual(srv, now - dt.timedelta(minutes=6))
    assert st == 403 and b["message"].startswith("Signature expired:") and "5 min" in b["message"]
    assert h["x-amzn-ErrorType"] == "InvalidSignatureException"
    st, h, b = _manual(srv, now + dt.timedelta(minutes=6))
    assert st == 403 and "Signature not yet current" in b["message"]


def test_unsigned_request(srv):
    req = urllib.request.Request(srv.url + "/listStreams", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_tampered_body(srv):
    url = srv.url + "/describeStream"
    body = b'{"StreamName":"auth-s"}'
    h = sigv4.sign_headers("POST", url, {"Content-Type": "application/json"}, srv.access_key, srv.secret_key,
                           "us-east-1", body=body, exclude=("authorization", "content-length"))
    req = urllib.request.Request(url, data=b'{"StreamName":"auth-x"}', headers=h, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403


def test_aws_cli_wrong_secret(srv):
    env = aws_cli_env(srv)
    env["AWS_SECRET_ACCESS_KEY"] = "nope"
    p = subprocess.run(["/usr/bin/aws", "--endpoint-url", srv.url, "kinesisvideo", "list-streams"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode != 0 and b"InvalidSignatureException" in p.stderr


def test_session_token(kvs_server):
    s = kvs_server(session_token="SESSIONTOKEN123")
    assert "StreamInfoList" in client(s, token="SESSIONTOKEN123").list_streams()
    for tok in (None, "OTHER"):
        with pytest.raises(ClientError) as e:
            client(s, token=tok).list_streams()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def _parse_req(text):
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers = []
    for ln in lines[1:]:
        if ln.startswith((" ", "\t")) and headers:
            k, v = headers[-1]
            headers[-1] = (k, v + "," + ln.strip())
        elif ":" in ln:
            k, v = ln.split(":", 1)
            headers.append((k, v))
    path, _, query = target.partition("?")
    return method, path, query, headers, body.encode()


CASES = sorted(os.path.relpath(os.path.dirname(f), SUITE) for f in glob.glob(SUITE + "/**/*.req", recursive=True))


@pytest.mark.parametrize("case", CASES)
def test_sigv4_suite_vectors(case):
    d = os.path.join(SUITE, case)
    name = os.path.basename(case)
    reqf = os.path.join(d, name + ".req")
    if name in ("post-x-www-form-urlencoded", "post-x-www-form-urlencoded-parameters"):
        pytest.skip("upstream-inconsistent: .creq has Content-Length, .authz does not (see suite README)")
    method, path, query, headers, body = _parse_req(open(reqf, encoding="utf-8").read())
    authz = open(os.path.join(d, name + ".authz")).read().strip()
    headers.append(("Authorization", authz))
    amz = dict((k.lower(), v) for k, v in headers)["x-amz-date"]
    when = dt.datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    creds = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
    token = dict((k.lower(), v) for k, v in headers).get("x-amz-security-token")
    assert sigv4.verify(method, path, query, headers, body, creds, "us-east-1", now=when, service="service",
                        session_token=token) == "AKIDEXAMPLE"
    with pytest.raises(KvsError):
        sigv4.verify(method, path, query, headers, body, {"AKIDEXAMPLE": "other"}, "us-east-1", now=when,
                     service="service", session_token=token)
