"""A real S3 server for kvsfs's tests: Ceph's RADOS Gateway on 127.0.0.1 (scripts/s3-local), and a
fault-injecting proxy to put in front of it. See testing.py, proxy.py and README.md."""
from .testing import Rgw, RgwError, free_port, start_rgw
from .proxy import FaultProxy, Rule, classify

__all__ = ["Rgw", "RgwError", "free_port", "start_rgw", "FaultProxy", "Rule", "classify"]
