"""kvsfs mounted on kvs-local (quotas on): read-ahead windows of fragment reads and the requests an
open costs (src/fs/nodes/fragment.c, src/fs/cache/fetch.c, docs/SEMANTICS.md "Reading fragments
fast").

- a folder listed by readdir and read from its start (cp -r) gets windows of 1,000 fragments: one
  GetMediaForFragmentList per 1,000 fragments of the hour;
- a reader that opens one fragment without listing its folder gets one small batch;
- 8 parallel cp -r of 8 hours of one stream are never throttled;
- opening a fragment sends no FLUSH (FOPEN_NOFLUSH), counted in libfuse's debug log;
- a window streams: its first fragments are served while its call is still sending, and the
  next window is asked for at once (pipelined), both seen in kvs-local's counters.
Assertions are on kvs-local's counters (its "batches": the fragment count of each call) and on
log lines, never on timing.
"""
import datetime as dt
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import gmffl, xattr

UTC = dt.timezone.utc
PER_HOUR = 1800          # 2-second fragments
HOURS = 4
PARALLEL = 8             # readers, one hour each, of PER_SHORT fragments
PER_SHORT = 200


@pytest.fixture(scope="module")
def hours(kvs):
    """A stream with HOURS full hours of 2-second fragments, 2 days ago; returns the hour folders'
    paths relative to a mount (tuples), in order."""
    day = (dt.datetime.now(UTC) - dt.timedelta(days=2)).replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)
    kvs.seed_bulk("ra", count=PER_HOUR * HOURS, start_ts=day.timestamp(), interval_ms=2000)
    return [("ra", "fragments", day.strftime("%Y-%m-%d"), "%02d" % h) for h in range(HOURS)]


@pytest.fixture(scope="module")
def short_hours(kvs):
    """A stream with PER_SHORT fragments at the start of each of PARALLEL hours, 3 days ago."""
    day = (dt.datetime.now(UTC) - dt.timedelta(days=3)).replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)
    # one real PutMedia of template fragments (in hour 20), cloned into each hour (one encode)
    kvs.create_stream("ra8", retention_hours=24 * 5)
    r = kvs.seed_testsrc("ra8", duration=6, start_ts=day.timestamp() + 20 * 3600)
    numbers = [a["FragmentNumber"] for a in r.acks if a["EventType"] == "RECEIVED"]
    for h in range(PARALLEL):
        kvs.admin({"mode": "clone", "stream": "ra8", "count": PER_SHORT, "templates": numbers,
                   "start": day.timestamp() + 3600 * h, "interval_ms": 2000,
                   "keep_templates": True}, "seed")
    return [("ra8", "fragments", day.strftime("%Y-%m-%d"), "%02d" % h) for h in range(PARALLEL)]


def media(counters):
    return counters.get("GetMediaForFragmentList") or {"total": 0, "throttled": 0, "errors": 0,
                                                         "batches": []}


def throttled(counters):
    return {k: v["throttled"] for k, v in counters.items()
            if isinstance(v, dict) and v.get("throttled")}


def test_cold_cp_of_an_hour_uses_windows_of_1000_and_sends_no_flush(kvs, hours, mount, tmp_path):
    m = mount(kvs, debug=True)
    src = m.path(*hours[0])
    kvs.reset_counters()
    dest = str(tmp_path / "copy")
    subprocess.run(["cp", "-r", src, dest], check=True)
    c = kvs.counters()
    names = sorted(os.listdir(dest))
    assert len(names) == PER_HOUR
    g = media(c)
    # one call per 1,000 fragments: 1,000 then the other 800
    assert sorted(g["batches"], reverse=True) == [1000, PER_HOUR - 1000], g["batches"]
    assert g["errors"] == 0
    assert not throttled(c), c
    # the bytes are the service's (boto3 as the independent client), first and last
    for name in (names[0], names[-1]):
        number = xattr(os.path.join(src, name), "user.kvs.fragment_number")
        with open(os.path.join(dest, name), "rb") as f:
            assert f.read() == gmffl(kvs, "ra", [number])
    log = m.log()
    opens = len(re.findall(r"opcode: OPEN \(", log))
    assert opens >= PER_HOUR
    assert len(re.findall(r"opcode: FLUSH \(", log)) == 0
    assert len(re.findall(r"opcode: RELEASE \(", log)) >= PER_HOUR


def test_warm_reread_makes_no_call_and_no_flush(kvs, hours, mount, tmp_path):
    m = mount(kvs, debug=True)
    src = m.path(*hours[1])
    subprocess.run(["cp", "-r", src, str(tmp_path / "c1")], check=True)
    kvs.reset_counters()
    out = subprocess.run(f"tar cf - -C {src} . | wc -c", shell=True, check=True,
                         capture_output=True, text=True)
    assert int(out.stdout) > 0
    c = kvs.counters()
    assert not media(c)["batches"]
    assert len(re.findall(r"opcode: FLUSH \(", m.log())) == 0


def test_random_reader_gets_one_small_batch(kvs, hours, mount):
    m = mount(kvs)
    # the folder is never listed: the reader names fragment 900 of the hour by its start time
    t = dt.datetime.strptime("/".join(hours[2][2:]), "%Y-%m-%d/%H").replace(tzinfo=UTC)
    name = (t + dt.timedelta(seconds=2 * 900)).strftime("%Y%m%dT%H%M%S") + ".000Z.mkv"
    kvs.reset_counters()
    with open(m.path(*hours[2], name), "rb") as f:
        assert f.read()
    # "batches" is recorded when a call starts ("total" when its body has ended: the rest of
    # the batch may still be on the way)
    g = media(kvs.counters())
    assert len(g["batches"]) == 1 and 1 <= g["batches"][0] <= 8, g["batches"]


def test_a_window_serves_its_first_fragments_while_its_call_sends(kvs, hours, mount, tmp_path):
    m = mount(kvs)
    src = m.path(*hours[3])
    names = sorted(os.listdir(src))  # listed by readdir: a reader from the start gets 1,000
    # slow responses (5 MB/s: a window of 1,000 fragments takes seconds) so that the counts
    # below are read while both calls are still sending
    kvs.config(media_bandwidth=5_000_000)
    try:
        kvs.reset_counters()
        got = []
        for name in names[:2]:
            with open(os.path.join(src, name), "rb") as f:
                got.append(f.read())
        g = media(kvs.counters())
        deadline = time.monotonic() + 30
        while len(g["batches"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)   # the next window's call is started just after the first open
            g = media(kvs.counters())
        # "batches" counts calls started, "total" calls whose body has ended
        assert g["batches"] == [1000, PER_HOUR - 1000], g["batches"]
        assert g["total"] == 0, g
    finally:
        kvs.config(media_bandwidth=25_000_000)
    for name, data in zip(names, got):
        assert data == gmffl(kvs, "ra", [xattr(os.path.join(src, name), "user.kvs.fragment_number")])


def test_eight_parallel_cp_are_never_throttled(kvs, short_hours, mount, tmp_path):
    m = mount(kvs)
    kvs.reset_counters()
    errors = []

    def copy(i):
        try:
            subprocess.run(["cp", "-r", m.path(*short_hours[i]), str(tmp_path / f"p{i}")], check=True,
                           capture_output=True)
        except subprocess.CalledProcessError as e:
            errors.append(e.stderr)

    threads = [threading.Thread(target=copy, args=(i,)) for i in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    c = kvs.counters()
    assert not throttled(c), c
    g = media(c)
    assert g["errors"] == 0
    # each fragment asked for once, each hour in one call
    assert sum(g["batches"]) == PER_SHORT * PARALLEL, g["batches"]
    assert len(g["batches"]) == PARALLEL, g["batches"]
    for i in range(PARALLEL):
        assert len(os.listdir(tmp_path / f"p{i}")) == PER_SHORT


WALK_DAYS = 3


@pytest.fixture(scope="module")
def walk_days(kvs):
    """A stream with WALK_DAYS full days of 2-second fragments (43,200 a day), ending 2 days ago."""
    end = (dt.datetime.now(UTC) - dt.timedelta(days=2)).replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)
    start = end - dt.timedelta(days=WALK_DAYS)
    kvs.seed_bulk("walk", count=43200 * WALK_DAYS, start_ts=start.timestamp(), interval_ms=2000)
    return [("walk", "fragments", (start + dt.timedelta(days=d)).strftime("%Y-%m-%d"))
            for d in range(WALK_DAYS)]


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int([l for l in f if l.startswith("VmHWM")][0].split()[1])


def test_long_walk_keeps_memory_bounded_and_lists_each_hour_once(kvs, walk_days, mount,
                                                                  sanitized):
    m = mount(kvs, meta_cache=4)
    kvs.reset_counters()
    out = subprocess.run(["ls", "-lR"] + [m.path(*d) for d in walk_days], capture_output=True,
                         text=True, check=True)
    assert sum(1 for l in out.stdout.splitlines() if l.startswith("-")) == 43200 * WALK_DAYS
    c = kvs.counters()
    # each hour listed once (2 pages of 1,000 for 1,800 fragments): eviction never re-lists
    # an hour a sequential walk is in
    assert c["ListFragments"]["total"] == 2 * 24 * WALK_DAYS, c["ListFragments"]
    assert not throttled(c), c
    assert "GetMediaForFragmentList" not in c
    hwm = vm_hwm_kib(m.pid)
    print(f"peak RSS after the walk: {hwm} KiB")
    m.stop()
    # 4 MiB hold about 6 hours of listings: the rest were dropped, least recently used first
    dropped = re.findall(r"hour listings dropped to stay within meta_cache: (\d+)", m.log())
    assert dropped and int(dropped[-1]) >= 24 * WALK_DAYS - 8, dropped
    # without the bound the listings alone took about 19 MiB a day (102 MiB after 3 days), and
    # the nodes the kernel keeps looked up about 10 MiB a day: a dropped hour is also dropped
    # from the kernel (notify_inval_entry), which then forgets the nodes below it
    # (under ASan the eviction count above is the bound: its quarantine alone keeps 256 MiB)
    assert sanitized or hwm <= 64 * 1024, f"peak RSS {hwm} KiB"
