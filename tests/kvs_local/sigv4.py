"""AWS Signature Version 4: signing (for our own PutMedia/seeding client) and verification (server).

The verifier recomputes the signature exactly as AWS does: canonical request (method, double-encoded
canonical URI, sorted/encoded query, the signed headers lower-cased/trimmed, signed header list,
payload hash), string to sign, derived key. Payload hash rule of kvs-local: the value of
``x-amz-content-sha256`` if that header is present, else SHA-256("") for ``/putMedia`` (streaming body,
producer-c behaviour), else SHA-256(body).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
import urllib.parse

from .errors import KvsError

ALGO = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_S = 300


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _uri_encode(s: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(s, safe=safe)


def canonical_uri(raw_path: str, normalize: bool = True) -> str:
    path = raw_path or "/"
    if normalize:
        # RFC 3986 dot-segment removal and duplicate slash collapse (non-S3 services)
        segs = []
        for seg in path.split("/"):
            if seg in ("", "."):
                continue
            if seg == "..":
                if segs:
                    segs.pop()
                continue
            segs.append(seg)
        norm = "/" + "/".join(segs)
        if path.endswith("/") and norm != "/":
            norm += "/"
        path = norm
    # AWS encodes the (already encoded) path once more for every service but S3
    return _uri_encode(path, safe="/-_.~")


def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        k = urllib.parse.unquote(k.replace("+", "%20"))
        v = urllib.parse.unquote(v.replace("+", "%20"))
        pairs.append((_uri_encode(k), _uri_encode(v)))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _trim(v: str) -> str:
    return re.sub(r"\s+", " ", v.strip())


def canonical_headers(headers: list[tuple[str, str]], signed: list[str]) -> str:
    vals: dict[str, list[str]] = {}
    for k, v in headers:
        vals.setdefault(k.lower(), []).append(_trim(v))
    return "".join(f"{h}:{','.join(vals.get(h, []))}\n" for h in signed)


def canonical_request(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]],
                      signed: list[str], payload_hash: str) -> str:
    return "\n".join([method.upper(), canonical_uri(raw_path), canonical_query(raw_query),
                      canonical_headers(headers, signed), ";".join(signed), payload_hash])


def string_to_sign(amz_date: str, scope: str, creq: str) -> str:
    return "\n".join([ALGO, amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def sign_headers(method: str, url: str, headers: dict[str, str], access_key: str, secret_key: str,
                 region: str, service: str = "kinesisvideo", payload_hash: str | None = None,
                 body: bytes = b"", session_token: str | None = None,
                 now: _dt.datetime | None = None, exclude=("authorization", "content-length", "content-type",
                                                           "x-amz-security-token")) -> dict[str, str]:
    """Returns a copy of headers with Host, X-Amz-Date, (X-Amz-Security-Token) and Authorization added.
    By default signs every header except authorization, content-length, content-type and the token,
    like producer-c."""
    u = urllib.parse.urlsplit(url)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    out = dict(headers)
    if not any(k.lower() == "host" for k in out):
        out["Host"] = u.netloc
    out["X-Amz-Date"] = amz_date
    if session_token:
        out["X-Amz-Security-Token"] = session_token
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    signed = sorted({k.lower() for k in out if k.lower() not in exclude})
    creq = canonical_request(method, u.path or "/", u.query, list(out.items()), signed, payload_hash)
    scope = f"{date}/{region}/{service}/aws4_request"
    sig = hmac.new(signing_key(secret_key, date, region, service),
                   string_to_sign(amz_date, scope, creq).encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"{ALGO} Credential={access_key}/{scope}, SignedHeaders={';'.join(signed)}, "
                            f"Signature={sig}")
    return out


_AUTH_RE = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)")


def _sig_error(message: str, type_: str = "InvalidSignatureException") -> KvsError:
    e = KvsError(403, type_, message)
    e.lower_message = True  # the SigV4 front end answers {"message": ...}
    return e


def verify(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]], body: bytes | None,
           credentials: dict[str, str], region: str, now: _dt.datetime | None = None,
           session_token: str | None = None, service: str = "kinesisvideo", log=None) -> str:
    """Verifies a signed request; returns the access key. Raises KvsError(403) like AWS.
    body None means a streaming body (PutMedia)."""
    hmap: dict[str, str] = {}
    for k, v in headers:
        hmap.setdefault(k.lower(), v)
    auth = hmap.get("authorization")
    if not auth:
        raise _sig_error("Missing Authentication Token", "MissingAuthenticationTokenException")
    m = _AUTH_RE.match(auth.strip())
    if not m:
        raise _sig_error("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
                         "IncompleteSignatureException")
    cred, signed_s, sig = m.groups()
    parts = cred.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise _sig_error(f"Credential should be scoped to a valid region. ", "IncompleteSignatureException")
    akid, date, c_region, c_service, _ = parts
    if akid not in credentials:
        raise _sig_error("The security token included in the request is invalid.", "UnrecognizedClientException")
    tok = hmap.get("x-amz-security-token")
    if session_token:
        if tok != session_token:
            raise _sig_error("The security token included in the request is invalid.", "UnrecognizedClientException")
    elif tok:
        raise _sig_error("The security token included in the request is invalid.", "UnrecognizedClientException")
    if c_region != region:
        raise _sig_error(f"Credential should be scoped to a valid region, not '{c_region}'. ")
    if c_service != service:
        if c_service == "kinesis-video" and log:
            log.info("request signed for service 'kinesis-video' (accepted)")
        elif c_service != "kinesis-video":
            raise _sig_error(f"Credential should be scoped to correct service: '{service}'. ")
    amz_date = hmap.get("x-amz-date")
    if amz_date:
        try:
            t = _dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            raise _sig_error(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601")
    elif hmap.get("date"):
        import email.utils
        try:
            t = email.utils.parsedate_to_datetime(hmap["date"])
        except (TypeError, ValueError):
            raise _sig_error("Date is invalid")
        amz_date = t.strftime("%Y%m%dT%H%M%SZ")
    else:
        raise _sig_error("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                         "IncompleteSignatureException")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    skew = (t - now).total_seconds()
    fmt = "%Y%m%dT%H%M%SZ"
    if skew < -MAX_SKEW_S:
        raise _sig_error(f"Signature expired: {amz_date} is now earlier than "
                         f"{(now - _dt.timedelta(seconds=MAX_SKEW_S)).strftime(fmt)} ({now.strftime(fmt)} - 5 min.)")
    if skew > MAX_SKEW_S:
        raise _sig_error(f"Signature not yet current: {amz_date} is still later than "
                         f"{(now + _dt.timedelta(seconds=MAX_SKEW_S)).strftime(fmt)} ({now.strftime(fmt)} + 5 min.)")
    if date != amz_date[:8]:
        raise _sig_error(f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                         f"'{date}' != '{amz_date[:8]}', from '{amz_date}'.")
    signed = signed_s.split(";")
    if "host" not in signed:
        raise _sig_error("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    if "x-amz-content-sha256" in hmap:
        payload_hash = hmap["x-amz-content-sha256"]
    elif body is None:
        payload_hash = EMPTY_SHA256
    else:
        payload_hash = hashlib.sha256(body).hexdigest()
    creq = canonical_request(method, raw_path, raw_query, headers, signed, payload_hash)
    scope = f"{date}/{c_region}/{c_service}/aws4_request"
    sts = string_to_sign(amz_date, scope, creq)
    expected = hmac.new(signing_key(credentials[akid], date, c_region, c_service), sts.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig.lower()):
        raise _sig_error(
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.\n\n"
            f"The Canonical String for this request should have been\n'{creq}'\n\n"
            f"The String-to-Sign should have been\n'{sts}'\n")
    return akid
