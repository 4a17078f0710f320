"""`kvsfs check [-o OPTIONS]`: one line per IAM action, against kvs-local's per-key deny rules
(and Ceph RGW for export=). kvs-local's counters judge that each action was really called."""
import os
import re
import subprocess

import pytest


KVS_ACTIONS = ["ListStreams", "DescribeStream", "GetDataEndpoint", "ListFragments",
               "GetMediaForFragmentList", "GetClip", "GetHLSStreamingSessionURL",
               "GetDASHStreamingSessionURL", "GetImages", "PutMedia"]


def env_for(srv, secret=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=srv.access_key, AWS_SECRET_ACCESS_KEY=secret or srv.secret_key,
               AWS_REGION=srv.region, AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    return env


def check(build_dir, srv, *opts, secret=None):
    o = ",".join([f"endpoint={srv.url}", *opts])
    return subprocess.run([str(build_dir / "src" / "kvsfs"), "check", "-o", o],
                          env=env_for(srv, secret), capture_output=True, text=True, timeout=300)


def lines(out):
    """{action: status} of the report."""
    return {m.group(2): m.group(1)
            for m in re.finditer(r"^  (ok|MISSING|FAILED) +(\S+(?: \(\w+\))?)", out, re.M)}


@pytest.fixture(scope="module")
def ksrv(kvs_servers, request):
    srv = kvs_servers.start(request)
    srv.seed_testsrc("cam1", duration=4)
    return srv


def test_every_action_allowed(ksrv, build_dir):
    ksrv.config(deny=[])
    ksrv.reset_counters()
    r = check(build_dir, ksrv)
    assert r.returncode == 0, r.stdout + r.stderr
    got = lines(r.stdout)
    assert got == {f"kinesisvideo:{a}": "ok" for a in KVS_ACTIONS}, r.stdout
    assert "stream checked: cam1" in r.stdout
    counters = ksrv.counters()
    for a in KVS_ACTIONS:
        assert counters.get(a, {}).get("total", 0) >= 1, a  # each action was really called
    assert ksrv.secret_key not in r.stdout + r.stderr
    # a PutMedia with an empty body stored nothing
    assert counters["PutMedia"]["errors"] == 0


@pytest.mark.parametrize("action", ["GetClip", "ListFragments", "GetImages"])
def test_a_denied_action_is_named(ksrv, build_dir, action):
    ksrv.config(deny=[f"{ksrv.access_key}:{action}"])
    try:
        r = check(build_dir, ksrv, "streams=cam1")
    finally:
        ksrv.config(deny=[])
    assert r.returncode == 1, r.stdout + r.stderr
    got = lines(r.stdout)
    assert got.pop(f"kinesisvideo:{action}") == "MISSING", r.stdout
    assert set(got.values()) == {"ok"}, r.stdout
    assert f'add "kinesisvideo:{action}" to the IAM policy' in r.stdout
    assert "1 action missing" in r.stdout


def test_a_rule_for_another_key_denies_nothing(ksrv, build_dir):
    ksrv.config(deny=["AKIDSOMEONEELSE:GetClip"])
    try:
        r = check(build_dir, ksrv)
    finally:
        ksrv.config(deny=[])
    assert r.returncode == 0, r.stdout


def test_rejected_credentials_stop_at_once(ksrv, build_dir):
    r = check(build_dir, ksrv, secret="not-the-secret")
    assert r.returncode == 1
    assert "FAILED   credentials:" in r.stdout and "InvalidSignature" in r.stdout, r.stdout
    assert "not-the-secret" not in r.stdout + r.stderr
    assert "MISSING" not in r.stdout


def test_unreachable_endpoint(ksrv, build_dir, kvs_server):
    srv = kvs_server()
    srv.stop()
    r = check(build_dir, srv)
    assert r.returncode == 1
    assert "cannot be reached" in r.stdout and "ECONNREFUSED" in r.stdout, r.stdout


def test_bad_options_exit_2(ksrv, build_dir):
    r = check(build_dir, ksrv, "no_such_option=1")
    assert r.returncode == 2 and "no_such_option" in r.stderr


pytest.importorskip("s3_local.testing")


def test_export_checks_the_s3_actions(build_dir, export_stack):
    rgw, srv = export_stack.rgw, export_stack.kvs
    r = check(build_dir, srv, "export=s3://exports/kvs", f"s3_endpoint={rgw.endpoint}",
              "s3_path_style")
    assert r.returncode == 0, r.stdout + r.stderr
    got = lines(r.stdout)
    for a in ("s3:ListBucket (HeadBucket)", "s3:ListBucket (ListObjectsV2)", "s3:PutObject",
              "s3:GetObject", "s3:DeleteObject", "s3:PutObject (CreateMultipartUpload)",
              "s3:AbortMultipartUpload", "s3:ListBucketMultipartUploads"):
        assert got.get(a) == "ok", (a, r.stdout)
    # the probe object and the upload are gone
    env = dict(os.environ, AWS_ACCESS_KEY_ID=rgw.access_key,
               AWS_SECRET_ACCESS_KEY=rgw.secret_key, AWS_DEFAULT_REGION="us-east-1")
    ls = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3api",
                         "list-objects-v2", "--bucket", "exports"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert ls.returncode == 0 and ".kvsfs-check" not in ls.stdout, ls.stdout + ls.stderr
    up = subprocess.run(["/usr/bin/aws", "--endpoint-url", rgw.endpoint, "s3api",
                         "list-multipart-uploads", "--bucket", "exports"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0 and "UploadId" not in up.stdout, up.stdout
    # a bucket that does not exist: named
    r = check(build_dir, srv, "export=s3://nobucket/kvs", f"s3_endpoint={rgw.endpoint}",
              "s3_path_style")
    assert r.returncode == 1 and "s3:ListBucket (HeadBucket)" in r.stdout, r.stdout
