"""Helpers of the integration suites that run kvsfs programs (docs/TESTING.md).

- mount.Mount: one mounted kvsfs daemon (the `mount` fixture of tests/integration/mount).
- fsdriver.Driver: one kvsfs-fs process, the fs layer in-process (the `fs_driver` fixture of
  tests/integration/fs).
- helpers: daemon_env(srv), unexpected_lines(log, expected), fragment_files(root),
  xattr(path, name), md5(path), clip_stamp(ts), ffprobe_json(path, *args).
The judges' helpers for kvs-local (boto3 clients, gmffl, retry_throttled) are in kvs_local.testing;
the process helpers (daemon_pids, reap) in kvsfs_procs.
"""
from .fsdriver import Driver, parse_attr, parse_ls
from .helpers import (SANITIZER_REPORT, clip_stamp, daemon_env, ffprobe_json, fragment_files, md5,
                      unexpected_lines, xattr)
from .mount import Mount

__all__ = ["Driver", "Mount", "SANITIZER_REPORT", "clip_stamp", "daemon_env", "ffprobe_json",
           "fragment_files", "md5", "parse_attr", "parse_ls", "unexpected_lines", "xattr"]
