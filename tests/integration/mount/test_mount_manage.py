"""Stream management through the tree with -o manage_streams (SEMANTICS.md "Stream management"):
mkdir/rmdir at the root and user.kvs.* attributes of a stream folder, judged with boto3's
DescribeStream; everything refused without the option."""
import errno
import os

import pytest
from botocore.exceptions import ClientError

from kvs_local.testing import boto3_client, retry_throttled


def describe(srv, name):
    kv = boto3_client(srv, "kinesisvideo")
    return retry_throttled(kv.describe_stream, StreamName=name)["StreamInfo"]


def gone(srv, name):
    with pytest.raises(ClientError) as e:
        describe(srv, name)
    return e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_everything_is_refused_without_manage_streams(kvs, mount):
    kvs.create_stream("ro1", retention_hours=24)
    m = mount(kvs)
    for call, args in ((os.mkdir, (m.path("newcam"),)), (os.rmdir, (m.path("ro1"),)),
                       (os.setxattr, (m.path("ro1"), "user.kvs.retention_hours", b"48")),
                       (os.setxattr, (m.path("ro1"), "user.kvs.delete_confirm", b"ro1"))):
        with pytest.raises(OSError) as e:
            call(*args)
        assert e.value.errno == errno.EROFS, call
    assert os.listxattr(m.path("ro1")) == ["user.kvs.stream"]
    assert gone(kvs, "newcam")
    assert describe(kvs, "ro1")["DataRetentionInHours"] == 24


def test_mkdir_setfattr_rmdir_round_trip(kvs, mount):
    m = mount(kvs, manage_streams=True, default_retention_hours=12)
    m.expect_log(r"rmdir newcam refused: deleting a stream deletes its video; confirm first with: "
                 r"setfattr -n user.kvs.delete_confirm -v newcam MNT/newcam")
    m.expect_log(r"live: newcam: stream is not live")  # listing the new folder sizes live.m3u8
    os.mkdir(m.path("newcam"))
    info = describe(kvs, "newcam")
    assert info["Status"] == "ACTIVE" and info["DataRetentionInHours"] == 12
    assert "newcam" in os.listdir(m.dir)
    assert sorted(os.listdir(m.path("newcam"))) == ["clips", "fragments", "images", "ingest", "live.m3u8",
                                                    "live.mpd"]
    with pytest.raises(FileExistsError):
        os.mkdir(m.path("newcam"))

    # read-only attributes from DescribeStream
    p = m.path("newcam")
    assert os.getxattr(p, "user.kvs.status") == b"ACTIVE"
    assert os.getxattr(p, "user.kvs.retention_hours") == b"12"
    assert os.getxattr(p, "user.kvs.version").decode() == info["Version"]
    assert "user.kvs.creation_time" in os.listxattr(p)
    assert os.getxattr(p, "user.kvs.storage_tier") == b"HOT"  # DescribeStreamStorageConfiguration
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.kvs.status", b"DELETING")
    assert e.value.errno == errno.EPERM

    # retention up and down (the INCREASE/DECREASE form)
    os.setxattr(p, "user.kvs.retention_hours", b"48")
    assert describe(kvs, "newcam")["DataRetentionInHours"] == 48
    os.setxattr(p, "user.kvs.retention_hours", b"6")
    assert describe(kvs, "newcam")["DataRetentionInHours"] == 6
    assert os.getxattr(p, "user.kvs.retention_hours") == b"6"
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.kvs.retention_hours", b"soon")
    assert e.value.errno == errno.EINVAL

    # rmdir needs the confirmation naming the stream
    with pytest.raises(PermissionError):
        os.rmdir(p)
    assert describe(kvs, "newcam")["Status"] == "ACTIVE"
    os.setxattr(p, "user.kvs.delete_confirm", b"othercam")
    with pytest.raises(PermissionError):
        os.rmdir(p)
    os.setxattr(p, "user.kvs.delete_confirm", b"newcam")
    os.rmdir(p)
    assert gone(kvs, "newcam")
    assert "newcam" not in os.listdir(m.dir)


def test_mkdir_of_a_bad_name_is_einval(kvs, mount):
    m = mount(kvs, manage_streams=True)
    m.expect_log(r"mkdir bad name!: not a stream name")
    kvs.reset_counters()
    with pytest.raises(OSError) as e:
        os.mkdir(m.path("bad name!"))
    assert e.value.errno == errno.EINVAL
    assert kvs.counters().get("CreateStream") is None
