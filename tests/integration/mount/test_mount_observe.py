"""MNT/.kvsfs/: metrics (Prometheus text format), status, and the SIGUSR1/SIGUSR2 signals.

The judges are independent of kvsfs: prometheus_client's text parser reads the metrics, and
kvs-local's own per-API counters are the truth the request counts must match.
"""
import datetime as dt
import errno
import os
import re
import signal
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from kvsfs_testing import clip_stamp as stamp


UTC = dt.timezone.utc


def read(path):
    with open(path, "r") as f:
        return f.read()


def metrics(m):
    """The mount's metrics as {(name, api-or-None): value}, parsed by prometheus_client."""
    out = {}
    for fam in text_string_to_metric_families(read(m.path(".kvsfs", "metrics"))):
        for s in fam.samples:
            out[(s.name, s.labels.get("api"))] = s.value
    return out


def api_counts(mt):
    """{api: (requests, errors, throttles)} of the APIs kvsfs called."""
    out = {}
    for (name, api), v in mt.items():
        if api is None or not name.startswith("kvsfs_aws_"):
            continue
        kind = name[len("kvsfs_aws_"):].replace("_total", "")
        out.setdefault(api, {})[kind] = int(v)
    return {a: (c["requests"], c["errors"], c["throttles"]) for a, c in out.items()
            if c["requests"]}


def server_counts(srv):
    return {a: (c["total"], c["errors"], c["throttled"]) for a, c in srv.counters().items()
            if c["total"]}


def settled(m):
    """Metrics once nothing is in flight (read-ahead batches, clips, uploads)."""
    for _ in range(200):
        mt = metrics(m)
        if (mt[("kvsfs_readahead_batches_in_progress", None)] == 0
                and mt[("kvsfs_clips_in_progress", None)] == 0
                and mt[("kvsfs_upload_queue_parts", None)] == 0):
            return mt
        time.sleep(0.05)
    raise AssertionError("work still in progress")


@pytest.fixture(scope="module")
def obsrv(kvs_servers, request):
    """kvs-local with quotas on: a short stream, and a long one for clips of several GetClips."""
    srv = kvs_servers.start(request)
    srv.seed_testsrc("cam1", duration=8)
    start = (int(time.time()) // 3600 - 3) * 3600
    srv.seed_bulk("longcam", count=460, start_ts=start, interval_ms=2000)
    return srv, start


def test_kvsfs_folder_is_hidden_readonly_and_reachable(obsrv, mount):
    srv, _ = obsrv
    m = mount(srv)
    assert ".kvsfs" not in os.listdir(m.dir)
    assert sorted(os.listdir(m.path(".kvsfs"))) == ["metrics", "status"]
    for name in ("metrics", "status"):
        p = m.path(".kvsfs", name)
        assert os.stat(p).st_mode & 0o222 == 0
        with pytest.raises(OSError) as e:
            open(p, "w")
        assert e.value.errno in (errno.EROFS, errno.EACCES)
    with pytest.raises(OSError) as e:
        os.mkdir(m.path(".kvsfs", "x"))
    assert e.value.errno == errno.EROFS
    with pytest.raises(FileNotFoundError):
        os.stat(m.path(".kvsfs", "nothing"))
    # every family parses; types are what Prometheus expects
    fams = {f.name: f.type for f in text_string_to_metric_families(read(m.path(".kvsfs", "metrics")))}
    for name in ("kvsfs_aws_requests", "kvsfs_aws_errors", "kvsfs_aws_throttles",
                 "kvsfs_aws_retries", "kvsfs_kvs_read_bytes", "kvsfs_s3_read_bytes",
                 "kvsfs_s3_written_bytes", "kvsfs_cache_hits", "kvsfs_cache_misses",
                 "kvsfs_cache_evictions", "kvsfs_fragments_listed"):
        assert fams[name] == "counter", name
    for name in ("kvsfs_cache_bytes", "kvsfs_clips_in_progress", "kvsfs_upload_queue_parts",
                 "kvsfs_upload_queue_bytes", "kvsfs_resident_memory_peak_bytes"):
        assert fams[name] == "gauge", name
    status = read(m.path(".kvsfs", "status"))
    assert "Work in progress:" in status and "Options:" in status
    assert f"endpoint={srv.url}" in status
    assert srv.secret_key not in status and srv.secret_key not in read(m.path(".kvsfs", "metrics"))


def test_metrics_match_kvs_local_counters(obsrv, mount):
    srv, start = obsrv
    srv.reset_counters()
    m = mount(srv)
    # a scripted session: list, read every fragment twice (the second from the disk cache),
    # make a clip, read it
    frags = []
    for d, _, files in os.walk(m.path("cam1")):
        frags += [os.path.join(d, f) for f in files if f.endswith(".mkv")]
    assert frags
    total = 0
    for f in sorted(frags) * 2:
        total += len(open(f, "rb").read())
    clip = m.path("longcam", "clips", f"{stamp(start)}-{stamp(start + 59)}.mp4")
    clip_bytes = len(open(clip, "rb").read())
    assert clip_bytes > 0
    mt = settled(m)
    theirs = server_counts(srv)
    ours = api_counts(mt)
    assert ours == theirs, (ours, theirs)
    for api in ("ListStreams", "ListFragments", "GetMediaForFragmentList", "GetClip"):
        assert ours[api][0] >= 1, api
    assert sum(r for r, _, _ in ours.values()) == sum(t for t, _, _ in theirs.values())
    # bytes: every fragment came once from KVS, the clip too
    assert mt[("kvsfs_kvs_read_bytes_total", None)] >= total // 2 + clip_bytes
    assert mt[("kvsfs_fragments_listed_total", None)] >= len(frags)
    assert mt[("kvsfs_cache_hits_total", None)] >= len(frags)
    assert mt[("kvsfs_cache_misses_total", None)] >= 1
    assert mt[("kvsfs_cache_bytes", None)] >= total // 2
    assert mt[("kvsfs_resident_memory_peak_bytes", None)] > 0
    assert mt[("kvsfs_s3_written_bytes_total", None)] == 0
    # a throttled request is retried: counted as kvs-local counts it (every attempt)
    srv.faults({"ListFragments": {"throttle_next": 1}})
    srv.reset_counters()
    before = api_counts(metrics(m))
    hour = dt.datetime.fromtimestamp(start, UTC)
    assert os.listdir(m.path("longcam", "fragments", hour.strftime("%Y-%m-%d"), hour.strftime("%H")))
    srv.clear_faults()
    after = api_counts(settled(m))
    diff = {a: tuple(x - y for x, y in zip(after[a], before.get(a, (0, 0, 0)))) for a in after}
    diff = {a: d for a, d in diff.items() if any(d)}
    assert diff == server_counts(srv), (diff, server_counts(srv))
    assert diff["ListFragments"][2] == 1
    assert metrics(m)[("kvsfs_aws_retries_total", "ListFragments")] >= 1


def test_status_shows_a_clip_in_progress(obsrv, mount):
    srv, start = obsrv
    m = mount(srv)
    name = f"{stamp(start)}-{stamp(start + 899)}.mp4"  # 450 fragments: 3 GetClips at 1/s
    clip = m.path("longcam", "clips", name)
    done = threading.Event()
    result = {}

    def make():
        try:
            result["size"] = os.stat(clip).st_size
        finally:
            done.set()

    t = threading.Thread(target=make)
    t.start()
    seen, gauge = [], 0
    while not done.is_set():
        st = read(m.path(".kvsfs", "status"))
        line = [x for x in st.splitlines() if "clip longcam/clips/" + name in x]
        if line:
            seen.append(line[0])
        gauge = max(gauge, metrics(m)[("kvsfs_clips_in_progress", None)])
        time.sleep(0.1)
    t.join()
    assert result["size"] > 0
    assert seen, "the clip never showed in .kvsfs/status"
    assert any(re.search(r": \d/3 parts, \d+ bytes", x) for x in seen), seen
    assert gauge == 1
    # made: gone from the status
    assert "clip longcam" not in read(m.path(".kvsfs", "status"))


def wait_log(m, pattern, n=1):
    for _ in range(300):
        if len(re.findall(pattern, m.log())) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in the log:\n{m.log()}")


def test_sigusr1_logs_status_and_sigusr2_toggles_debug(obsrv, mount):
    srv, start = obsrv
    m = mount(srv)
    # a failure shows in the status with its time
    srv.faults({"ListFragments": {"deny_next": 1}})
    m.expect_log(r"NotAuthorized|not authorized")
    hour = dt.datetime.fromtimestamp(start, UTC)
    with pytest.raises(PermissionError):
        os.listdir(m.path("longcam", "fragments", hour.strftime("%Y-%m-%d"), hour.strftime("%H")))
    srv.clear_faults()
    st = read(m.path(".kvsfs", "status"))
    errs = st[st.index("Last warnings and errors:"):]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ error .*NotAuthorized", errs), st
    m.signal(signal.SIGUSR1)
    wait_log(m, r"kvsfs\[info\] status: Options: ")
    assert "kvsfs[info] status: Work in progress:" in m.log()
    assert "kvsfs[debug]" not in m.log()
    m.signal(signal.SIGUSR2)
    wait_log(m, r"debug logging on \(SIGUSR2\)")
    os.listdir(m.path("cam1"))
    read(m.path(".kvsfs", "status"))
    os.stat(m.path("cam1", "fragments"))
    list(os.walk(m.path("cam1")))
    wait_log(m, r"kvsfs\[debug\]")
    m.signal(signal.SIGUSR2)
    wait_log(m, r"debug logging off \(SIGUSR2\)")
    n_debug = m.log().count("kvsfs[debug]")
    list(os.walk(m.path("cam1")))
    m.signal(signal.SIGUSR1)
    wait_log(m, r"kvsfs\[info\] status: Options: ", 2)
    assert m.log().count("kvsfs[debug]") == n_debug


def test_a_mount_serving_100_streams(kvs_server, mount, tmp_path):
    """docs/SCALE.md: one mount, 100 streams of three 2-second fragments each (one template
    ingested by real PutMedia into every stream): every stream listed, one fragment of each
    read; the daemon's peak RSS is printed (pytest -s) from .kvsfs/metrics and /proc."""
    from kvs_local import seed
    srv = kvs_server()
    tpl = seed.make_testsrc_mkv(str(tmp_path / "tpl.mkv"), 6.0, "h264", False, gop_seconds=2.0)
    names = [f"cam{i:03d}" for i in range(100)]
    start = time.time() - 600
    for n in names:
        for attempt in range(20):
            try:  # CreateStream's 50 TPS for the account throttles a fast loop: back off
                seed.ensure_stream(srv.url, n, 24, srv.access_key, srv.secret_key,
                                   srv.region)
                r = seed.put_media(srv.url, n, seed.file_chunks(tpl), srv.access_key,
                                   srv.secret_key, srv.region, "RELATIVE", start)
                break
            except seed.PutMediaError as e:
                if e.type_ != "ClientLimitExceededException" or attempt == 19:
                    raise
                time.sleep(0.2)
        assert sum(a["EventType"] == "RECEIVED" for a in r.acks) == 3
    # kvs-local counts a PutMedia when its handler ends, which may be after the client has read
    # the last ACK: wait for all 100 before the counters start from zero
    for _ in range(100):
        if srv.counters().get("PutMedia", {}).get("total", 0) >= len(names):
            break
        time.sleep(0.1)
    srv.reset_counters()
    m = mount(srv)
    assert sorted(os.listdir(m.dir)) == names
    read_bytes = 0
    hours = {dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d/%H")
             for t in (start, start + 5)}
    for n in names:
        frags = [os.path.join(m.path(n, "fragments", h), f) for h in sorted(hours)
                 for f in os.listdir(m.path(n, "fragments", h))]
        assert len(frags) == 3, (n, frags)
        read_bytes += len(open(sorted(frags)[0], "rb").read())
    mt = settled(m)
    peak = mt[("kvsfs_resident_memory_peak_bytes", None)]
    with open(f"/proc/{m.pid}/status") as f:
        hwm = [int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM:")][0]
    assert abs(peak - hwm) <= hwm // 10  # the metric agrees with the kernel's count
    c = srv.counters()
    print(f"\nSCALE 100 streams: {len(names)} listed, {read_bytes} bytes read, peak RSS "
          f"{hwm / 2**20:.1f} MiB, now {mt[('kvsfs_resident_memory_bytes', None)] / 2**20:.1f}"
          f" MiB; requests {sum(v['total'] for v in c.values())}, ListStreams "
          f"{c['ListStreams']['total']}, throttled "
          f"{sum(v['throttled'] for v in c.values())}")
    assert api_counts(mt) == server_counts(srv)


def test_export_bytes_and_s3_requests_are_counted(export_stack, mount, tmp_path):
    """A 20 MiB file copied into export/ (Ceph RGW): 3 parts of 8 MiB, its bytes written to S3,
    the queue empty afterwards; reading it back counts S3 bytes read. boto3 judges the object."""
    rgw, srv = export_stack.rgw, export_stack.kvs
    m = mount(srv, export="s3://exports/kvs", s3_endpoint=rgw.endpoint, s3_path_style=True)
    before = metrics(m)
    data = os.urandom(20 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with open(src, "rb") as f, open(m.path("export", "big.bin"), "wb") as out:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            out.write(b)
    mt = settled(m)
    head = rgw.s3().head_object(Bucket="exports", Key="kvs/big.bin")
    assert head["ContentLength"] == len(data)

    def d(name, api=None):
        return mt[(name, api)] - before[(name, api)]
    assert d("kvsfs_aws_requests_total", "UploadPart") == 3
    assert d("kvsfs_aws_requests_total", "CreateMultipartUpload") == 1
    assert d("kvsfs_aws_requests_total", "CompleteMultipartUpload") == 1
    assert d("kvsfs_s3_written_bytes_total") == len(data)
    assert mt[("kvsfs_upload_queue_bytes", None)] == 0
    assert open(m.path("export", "big.bin"), "rb").read() == data
    assert metrics(m)[("kvsfs_s3_read_bytes_total", None)] >= len(data)
