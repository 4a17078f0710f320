"""Small helpers of the suites that run kvsfs programs (the daemon, kvsfs-fs): their
environment, the check of their logs, and what tests ask of a mounted tree."""
import datetime as dt
import hashlib
import json
import os
import re
import subprocess

# a report of AddressSanitizer, LeakSanitizer or UBSan in a log fails the test that ran the program
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")


def daemon_env(srv, extra=None) -> dict:
    """The environment of a kvsfs program run against kvs-local srv: srv's keys and region as
    the only AWS credentials (no config file, no instance metadata), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=srv.access_key, AWS_SECRET_ACCESS_KEY=srv.secret_key,
               AWS_REGION=srv.region, AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    if extra:
        env.update(extra)
    return env


def unexpected_lines(log: str, expected) -> list:
    """The lines of a kvsfs log that fail a test: sanitizer reports, and warnings or errors that
    match none of the expected patterns (compiled regexes)."""
    bad = []
    for line in log.splitlines():
        if SANITIZER_REPORT.search(line):
            bad.append(line)
        elif "kvsfs[warning]" in line or "kvsfs[error]" in line:
            if not any(p.search(line) for p in expected):
                bad.append(line)
    return bad


def fragment_files(root) -> list:
    """Every fragment file (*.mkv) under root, sorted."""
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if f.endswith(".mkv")]
    return sorted(out)


def xattr(path, name) -> str:
    return os.getxattr(path, name).decode()


def md5(path) -> str:
    """MD5 (hex) of a file's bytes, read in 1 MiB pieces."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clip_stamp(ts) -> str:
    """The whole-second UTC stamp of clip names (clips/START-END.*): 20261203T130000Z."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def ffprobe_json(path, *args) -> dict:
    """ffprobe's JSON answer for path (args: -show_streams, -count_frames, ...); fails the test
    when ffprobe does."""
    r = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json", path], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)
