"""SigV4: kvsfs's signer (through tests/tools/kvsfs-sign) against botocore, case by case.

Every case is signed twice at a fixed time: by kvsfs and by botocore (SigV4Auth, S3SigV4Auth,
SigV4QueryAuth or S3SigV4QueryAuth on an AWSRequest, with botocore.auth's clock patched). The
Authorization header (and X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-SHA256) or the whole
presigned URL must be identical. The cases cover odd characters in paths and queries (spaces, `~`,
`+`, `%`, `=`, unicode, empty values, repeated keys), empty, binary and file bodies, session
tokens, KVS PutMedia styles, S3 with x-amz-content-sha256 and UNSIGNED-PAYLOAD, and presigned
URLs for kinesisvideo and s3.

The wire form given to kvsfs is what botocore sends: paths are passed as written in the URL,
query parameters given as `params` are encoded the way botocore encodes them
(botocore.utils.percent_encode_sequence).
"""
import datetime
import hashlib
import json
import subprocess
import types
from unittest import mock
from urllib.parse import parse_qs, quote, urlsplit

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence

ACCESS_KEY = "AKIDKVSFSSIGV4TEST01"
SECRET_KEY = "kvsfs/SigV4+Test/Secret0123456789abcdefgh"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//token+with/slashes==ZZ"
EMPTY = hashlib.sha256(b"").hexdigest()
T0 = datetime.datetime(2015, 8, 30, 12, 36, 0)
T1 = datetime.datetime(2024, 2, 29, 23, 59, 59)

KVS_HOST = "s-1234abcd.kinesisvideo.us-west-2.amazonaws.com"
S3_HOST = "kvsfs-bucket.s3.eu-central-1.amazonaws.com"
BINARY = bytes(range(256)) * 17


def wire_path(raw):
    """The path as botocore's serializers put it on the wire."""
    return quote(raw, safe="/~")


CASES = [
    dict(name="kvs-describe-stream", method="POST", host="kinesisvideo.us-west-2.amazonaws.com",
         path="/describeStream", headers=[("Content-Type", "application/json")],
         body=b'{"StreamName":"cam 1"}', region="us-west-2", service="kinesisvideo"),
    dict(name="kvs-putmedia-c-producer", method="POST", host=KVS_HOST, path="/putMedia",
         headers=[("x-amzn-stream-name", "cam1"), ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
                  ("x-amzn-producer-start-timestamp", "1700000000.000")],
         body=BINARY, empty_payload=True, token=TOKEN, region="us-west-2",
         service="kinesisvideo"),
    dict(name="kvs-putmedia-java-style", method="POST", host=KVS_HOST, path="/putMedia",
         headers=[("x-amzn-stream-name", "cam1")], body=BINARY, content_sha256=True,
         token=TOKEN, region="us-west-2", service="kinesisvideo"),
    dict(name="kvs-unsigned-payload", method="POST", host=KVS_HOST, path="/getMedia",
         body=b'{"StreamName":"x"}', unsigned=True, region="us-west-2",
         service="kinesisvideo"),
    dict(name="odd-path-normalized-double-encoded", method="GET", host=KVS_HOST,
         path=wire_path("/stream name/~tilde/plus+sign/eq=sign/\u20ac/pct%/") + "./dot/../x//y/",
         region="us-west-2", service="kinesisvideo"),
    dict(name="odd-path-dot-dot-above-root", method="GET", host=KVS_HOST,
         path="/a/../../b/%2e/c", region="us-west-2", service="kinesisvideo"),
    dict(name="raw-url-query", method="GET", host=KVS_HOST, path="/listFragments",
         query="b=2&a=1&a=0&empty=&flag&tilde=~x&enc=a%20b%2Bc%25d%3De&uni=%E2%82%AC",
         region="us-west-2", service="kinesisvideo"),
    dict(name="params-odd-characters", method="GET", host=KVS_HOST, path="/",
         params=[("space key", "a b"), ("plus", "a+b"), ("pct", "100%"), ("eq", "x=y"),
                 ("uni", "\u00fcn\u00efc\u00f8d\u00e9 \u20ac"), ("empty", ""), ("rep", "2"),
                 ("rep", "1"), ("rep", "10"), ("tilde", "~-._"), ("slash", "a/b")],
         region="us-west-2", service="kinesisvideo"),
    dict(name="odd-headers", method="GET", host=KVS_HOST, path="/",
         headers=[("X-Spaces", "  a   b \t c  "), ("x-dup", "one"), ("X-Dup", "two"),
                  ("X-DUP", " three "), ("User-Agent", "kvsfs/0.1"),
                  ("X-Amzn-Trace-Id", "Root=1-abc"), ("Content-Type", "text/plain; a=b")],
         region="us-west-2", service="kinesisvideo"),
    dict(name="empty-body-token", method="GET", host=KVS_HOST, path="/", token=TOKEN,
         region="us-west-2", service="kinesisvideo", time=T1),
    dict(name="binary-body", method="PUT", host=KVS_HOST, path="/upload", body=BINARY,
         region="us-west-2", service="kinesisvideo"),
    dict(name="file-body", method="PUT", host=KVS_HOST, path="/upload", body_file=True,
         body=bytes((i * 7919) % 251 for i in range(3 * 1024 * 1024 + 17)),
         region="us-west-2", service="kinesisvideo"),
    dict(name="s3-put-odd-key", method="PUT", host=S3_HOST,
         path=wire_path("/dir/my file+name=1~\u20ac%'!().mkv"), body=BINARY, s3=True,
         headers=[("Content-Type", "video/x-matroska")], region="eu-central-1",
         service="s3"),
    dict(name="s3-put-unsigned-payload", method="PUT", host=S3_HOST, path="/dir/big.mkv",
         body=BINARY, s3=True, unsigned=True, token=TOKEN, region="eu-central-1",
         service="s3"),
    dict(name="s3-no-normalization", method="GET", host=S3_HOST, path="/a//b/./c/../d",
         s3=True, region="eu-central-1", service="s3"),
    dict(name="s3-list-objects-token", method="GET", host=S3_HOST, path="/",
         params=[("list-type", "2"), ("prefix", "dir/sub dir/"), ("delimiter", "/"),
                 ("continuation-token", "1a+/b=="), ("encoding-type", "url")],
         s3=True, token=TOKEN, region="eu-central-1", service="s3", time=T1),
    dict(name="s3-empty-object", method="PUT", host=S3_HOST, path="/empty", body=b"",
         s3=True, region="eu-central-1", service="s3"),
    dict(name="presign-kvs-token", method="GET", host=KVS_HOST, path="/getHLSMasterPlaylist",
         params=[("SessionToken", "abc+/="), ("Name", "cam 1 \u20ac")], presign=True,
         expires=300, token=TOKEN, region="us-west-2", service="kinesisvideo"),
    dict(name="presign-kvs-extra-header", method="GET", host=KVS_HOST, path="/x%20y/z",
         headers=[("X-Custom", " v  w ")], presign=True, expires=60, region="us-west-2",
         service="kinesisvideo", time=T1),
    dict(name="presign-s3-odd-key", method="GET", host=S3_HOST,
         path=wire_path("/dir/my file+name=1~\u20ac%.mkv"), presign=True, s3=True,
         expires=3600, region="eu-central-1", service="s3"),
    dict(name="presign-s3-token-params", method="GET", host=S3_HOST, path="/a//b/./c",
         params=[("response-content-disposition", 'attachment; filename="a b.mkv"'),
                 ("versionId", "")],
         presign=True, s3=True, expires=604800, token=TOKEN, region="eu-central-1",
         service="s3"),
    dict(name="presign-url-query", method="GET", host=KVS_HOST, path="/p",
         query="x=1&y=%7E&z=", presign=True, expires=10, region="us-west-2",
         service="kinesisvideo"),
]


class FixedClock(datetime.datetime):
    now_value = T0

    @classmethod
    def utcnow(cls):
        return cls.now_value


def botocore_sign(case):
    """Returns (request, canonical_request) after botocore signed it."""
    creds = Credentials(ACCESS_KEY, SECRET_KEY, case.get("token"))
    url = f"https://{case['host']}{case['path']}"
    if case.get("query"):
        url += "?" + case["query"]
    req = AWSRequest(method=case["method"], url=url, data=case.get("body", b""),
                     params=list(case.get("params", [])) or None)
    for name, value in case.get("headers", []):
        req.headers[name] = value  # HTTPHeaders appends: repeated names stay repeated
    if case.get("content_sha256"):
        req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(case.get("body", b"")).hexdigest()
    if case.get("unsigned"):
        if case.get("s3"):
            req.context["client_config"] = types.SimpleNamespace(
                s3={"payload_signing_enabled": False})
        else:
            req.context["payload_signing_enabled"] = False
    if case.get("presign"):
        base = S3SigV4QueryAuth if case.get("s3") else SigV4QueryAuth
    else:
        base = S3SigV4Auth if case.get("s3") else SigV4Auth
    captured = {}

    class Capturing(base):
        def canonical_request(self, request):
            captured["creq"] = super().canonical_request(request)
            return captured["creq"]

        if case.get("empty_payload"):
            def payload(self, request):
                return EMPTY

    args = (creds, case["service"], case["region"])
    auth = Capturing(*args, expires=case["expires"]) if case.get("presign") else Capturing(*args)
    FixedClock.now_value = case.get("time", T0)
    with mock.patch.object(botocore.auth, "datetime",
                           types.SimpleNamespace(datetime=FixedClock)):
        auth.add_auth(req)
    return req, captured.get("creq")


def wire_query(case):
    """The query string botocore puts on the wire for this case."""
    if case.get("presign"):
        # SigV4QueryAuth re-serialises the operation parameters from a dict.
        qd = {k: v[0] for k, v in
              parse_qs(case.get("query", ""), keep_blank_values=True).items()}
        qd.update(dict(case.get("params", [])))
        return percent_encode_sequence(qd) if qd else ""
    if case.get("params"):
        return percent_encode_sequence(case["params"])
    return case.get("query", "")


def kvsfs_spec(case, tmp_path):
    flags = []
    if case.get("s3"):
        flags.append("s3")
    if case.get("content_sha256") or (case.get("unsigned") and not case.get("s3")):
        flags.append("content_sha256")
    spec = dict(method=case["method"], path=case["path"], query=wire_query(case),
                headers=[["Host", case["host"]]] + [list(h) for h in case.get("headers", [])],
                access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                region=case["region"], service=case["service"],
                time=int(case.get("time", T0).replace(tzinfo=datetime.timezone.utc).timestamp()),
                flags=flags, presign=bool(case.get("presign")), expires=case.get("expires", 0))
    if case.get("token"):
        spec["session_token"] = case["token"]
    body = case.get("body", b"")
    if case.get("unsigned") or (case.get("presign") and case.get("s3")):
        spec["payload_hash"] = "UNSIGNED-PAYLOAD"
    elif case.get("empty_payload"):
        pass  # no payload field: the empty-body hash (KVS C producer PutMedia)
    elif case.get("body_file"):
        f = tmp_path / f"{case['name']}.body"
        f.write_bytes(body)
        spec["body_file"] = str(f)
    elif body:
        spec["body_hex"] = body.hex()
    return spec


@pytest.fixture(scope="module")
def sign_tool(tool):
    return tool("kvsfs-sign")


def run_tool(sign_tool, spec):
    p = subprocess.run([sign_tool], input=json.dumps(spec), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_botocore(case, sign_tool, tmp_path):
    req, boto_creq = botocore_sign(case)
    ours = run_tool(sign_tool, kvsfs_spec(case, tmp_path))
    assert ours["rc"] == 0, ours
    # On a mismatch the canonical requests show where the two differ.
    assert ours["canonical_request"] == boto_creq
    if case.get("presign"):
        assert ours["authorization"] is None and ours["headers"] == []
        path = urlsplit(req.url).path
        assert f"https://{case['host']}{path}?{ours['query']}" == req.url
    else:
        added = {n.lower(): v for n, v in ours["headers"]}
        assert added["authorization"] == req.headers["Authorization"]
        assert added["x-amz-date"] == req.headers["X-Amz-Date"]
        assert added.get("x-amz-security-token") == req.headers.get("X-Amz-Security-Token")
        assert added.get("x-amz-content-sha256") == req.headers.get("X-Amz-Content-SHA256")
        assert len(added) == len(ours["headers"])
    # Nothing meant for logs carries a secret.
    for key in ("canonical_request_log", "string_to_sign"):
        assert SECRET_KEY not in ours[key]
        assert TOKEN not in ours[key]
        assert quote(TOKEN, safe="-_.~") not in ours[key]
    if case.get("token") and not case.get("presign"):
        assert "x-amz-security-token:[REDACTED]" in ours["canonical_request_log"]


def test_all_in_one_call_and_errors(sign_tool, tmp_path):
    """The tool takes an array; a bad request reports -EINVAL (22) without crashing."""
    good = kvsfs_spec(CASES[0], tmp_path)
    bad = dict(good, headers=[["X-No-Host", "1"]])
    out = run_tool(sign_tool, [good, bad])
    assert out[0]["rc"] == 0 and out[1]["rc"] == -22


def test_secret_not_in_argv_or_output(sign_tool, tmp_path):
    """The secret key is never printed by the tool (only signatures derived from it)."""
    case = dict(CASES[1])
    out = run_tool(sign_tool, kvsfs_spec(case, tmp_path))
    assert SECRET_KEY not in json.dumps(out)


PATH_CHARS = ["a", "Z", "0", "-", "_", ".", "~", " ", "+", "%", "=", "@", ":", "!", "'", "(",
              "*", ",", ";", "&", "$", "\u00e9", "\u20ac", "\U0001f600"]
QUERY_CHARS = PATH_CHARS + ["/", "?", "#", "[", "]"]
HEADER_CHARS = [chr(c) for c in range(0x21, 0x7f)] + [" ", " ", "\t"]


def random_case(rng, i):
    """A request with random odd characters everywhere, for one of the four botocore signers."""
    s3 = rng.random() < 0.4
    presign = rng.random() < 0.35
    segs = []
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.1:
            segs.append("")
        elif r < 0.2 and not s3:
            segs.append(rng.choice([".", ".."]))
        else:
            segs.append("".join(rng.choice(PATH_CHARS) for _ in range(rng.randint(1, 8))))
    raw = "/" + "/".join(segs)
    if rng.random() < 0.3:
        raw += "/"
    case = dict(name=f"random-{i}", method=rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD"]),
                host=S3_HOST if s3 else KVS_HOST, path=wire_path(raw), s3=s3, presign=presign,
                region="eu-central-1" if s3 else "us-west-2",
                service="s3" if s3 else "kinesisvideo",
                time=datetime.datetime(2015 + rng.randint(0, 20), rng.randint(1, 12),
                                       rng.randint(1, 28), rng.randint(0, 23),
                                       rng.randint(0, 59), rng.randint(0, 59)))
    params = []
    for _ in range(rng.randint(0, 5)):
        k = "".join(rng.choice(QUERY_CHARS) for _ in range(rng.randint(1, 6)))
        v = "".join(rng.choice(QUERY_CHARS) for _ in range(rng.randint(0, 6)))
        params.append((k, v))
        if not presign and rng.random() < 0.3:
            params.append((k, "".join(rng.choice(QUERY_CHARS) for _ in range(rng.randint(0, 3)))))
    if presign:
        params = list(dict(params).items())
    if params:
        case["params"] = params
    headers = []
    for _ in range(rng.randint(0, 4)):
        name = "x-" + "".join(rng.choice("abcdefghij-0123456789") for _ in range(rng.randint(1, 8)))
        for _ in range(rng.randint(1, 2)):
            val = "".join(rng.choice(HEADER_CHARS) for _ in range(rng.randint(0, 12)))
            headers.append((rng.choice([name, name.upper(), name.title()]), val))
    case["headers"] = headers
    if rng.random() < 0.5:
        case["token"] = TOKEN
    if presign:
        case["expires"] = rng.randint(1, 604800)
    else:
        r = rng.random()
        if r < 0.4:
            case["body"] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
        if rng.random() < 0.2:
            case["unsigned"] = True
    return case


def test_random_requests_match_botocore(sign_tool, tmp_path):
    """300 seeded random requests, signed in one kvsfs-sign call, all equal to botocore."""
    import random
    rng = random.Random(20150830)
    cases = [random_case(rng, i) for i in range(300)]
    specs = [kvsfs_spec(c, tmp_path) for c in cases]
    results = run_tool(sign_tool, specs)
    mismatches = []
    for case, ours in zip(cases, results):
        req, boto_creq = botocore_sign(case)
        if ours["rc"] != 0 or ours["canonical_request"] != boto_creq:
            mismatches.append((case, ours.get("canonical_request"), boto_creq))
            continue
        if case["presign"]:
            path = urlsplit(req.url).path
            ok = f"https://{case['host']}{path}?{ours['query']}" == req.url
        else:
            added = {n.lower(): v for n, v in ours["headers"]}
            ok = (added["authorization"] == req.headers["Authorization"]
                  and added.get("x-amz-security-token") == req.headers.get("X-Amz-Security-Token")
                  and added.get("x-amz-content-sha256") == req.headers.get("X-Amz-Content-SHA256"))
        if not ok:
            mismatches.append((case, ours, req.url))
    assert not mismatches, mismatches[:3]
