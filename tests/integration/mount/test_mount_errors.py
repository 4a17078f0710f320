"""Errors as users meet them (issue 9, items 6d and 6e), through the real daemon and kvs-local.

- An hour folder that readdir listed is ENOENT only when the stream is really gone; a "not found"
  from ListFragments for a stream that exists (a typed 404, or a bare 404 as from a proxy) is EIO.
- A mount refused for a wrong secret key fails with one short sentence naming the error type,
  without the server's canonical request and without any secret.
"""
import errno
import os
import subprocess
import tempfile
import time

import pytest

from kvs_local.testing import boto3_client, retry_throttled


def ymd_h(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t)), time.strftime("%H", time.gmtime(t))


def fragment_name(t_ms):
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t_ms // 1000)) + f".{t_ms % 1000:03d}Z.mkv"


def describe_calls(kvs):
    return kvs.counters().get("DescribeStream", {}).get("total", 0)


def test_hour_folder_is_eio_on_a_404_and_enoent_only_when_the_stream_is_gone(kvs, mount):
    stream = "hours404"
    start = int(time.time()) - 7200
    kvs.seed_testsrc(stream, duration=6, start_ts=start)
    # meta_ttl=60: only the refresh forced by a vanished stream can drop it from the root
    m = mount(kvs, streams=stream, meta_ttl=60)
    m.expect_log(r"listing fragments failed")
    day, hh = ymd_h(start)
    day_dir = m.path(stream, "fragments", day)
    hours = os.listdir(day_dir)
    assert hh in hours  # readdir listed the hour folder
    hour_dir = os.path.join(day_dir, hh)
    inside = os.path.join(hour_dir, fragment_name(start * 1000))

    try:
        for spec in ({"error_rate": 1.0, "error_status": 404},       # ResourceNotFoundException
                     {"error_rate": 1.0, "error_status": 404, "error_type": ""}):  # a bare 404
            kvs.clear_faults()
            kvs.faults({"ListFragments": spec})
            before = describe_calls(kvs)
            with pytest.raises(OSError) as e:
                os.listdir(hour_dir)
            assert e.value.errno == errno.EIO, (spec, e.value)
            with pytest.raises(OSError) as e:
                os.stat(inside)
            assert e.value.errno == errno.EIO, (spec, e.value)
            assert describe_calls(kvs) > before  # kvsfs asked whether the stream is gone
    finally:
        kvs.clear_faults()
    # the failure was not cached: the folder lists once ListFragments answers again
    frags = os.listdir(hour_dir)
    assert frags and all(f.endswith(".mkv") for f in frags)
    assert stream in os.listdir(m.dir)

    # the stream deleted: an hour never listed before is ENOENT, and the stream leaves the root
    kv = boto3_client(kvs, "kinesisvideo")
    arn = retry_throttled(kv.describe_stream, StreamName=stream)["StreamInfo"]["StreamARN"]
    retry_throttled(kv.delete_stream, StreamARN=arn)
    other = next(h for h in hours if h != hh)
    with pytest.raises(OSError) as e:
        os.listdir(os.path.join(day_dir, other))
    assert e.value.errno == errno.ENOENT, e.value
    assert stream not in os.listdir(m.dir)


def kvsfs_env(srv, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=srv.access_key, AWS_SECRET_ACCESS_KEY=srv.secret_key,
               AWS_REGION=srv.region, AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               XDG_CACHE_HOME=tempfile.mkdtemp(prefix="kvsfs-errors-cache-"))
    env.update(extra)
    return env


def test_wrong_secret_fails_the_mount_with_one_short_sentence(build_dir, kvs, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    wrong = "WrongSecretKey0123456789abcdefWRONG"
    r = subprocess.run([str(build_dir / "src" / "kvsfs"), "-o", f"endpoint={kvs.url}", str(mnt)],
                       env=kvsfs_env(kvs, AWS_SECRET_ACCESS_KEY=wrong), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert not os.path.ismount(mnt)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    last = lines[-1]
    assert last.startswith("kvsfs: "), r.stderr
    assert len(last) < 200, last
    assert "InvalidSignatureException" in last and "HTTP 403" in last, last
    assert "secret" in last.lower()  # says what to check
    assert last.count(". ") == 0 and "Canonical" not in last and "String-to-Sign" not in last, last
    for secret in (wrong, kvs.secret_key):
        assert secret not in r.stderr and secret not in r.stdout
