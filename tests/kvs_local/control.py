"""Control-plane APIs (service `kinesisvideo`)."""
from __future__ import annotations

import base64
import json
import re

from .errors import KvsError, invalid_argument

NAME_RE = re.compile(r"^[a-zA-Z0-9_.\-]{1,256}$")
ARN_RE = re.compile(r"^arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.\-]+/[0-9]+$")
VERSION_RE = re.compile(r"^[a-zA-Z0-9]{1,64}$")
API_NAMES = {"PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
             "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES"}
MAX_RETENTION = 87600


def _str(body, key, lo=1, hi=256, required=False, pattern=None):
    v = body.get(key)
    if v is None:
        if required:
            raise invalid_argument(f"1 validation error detected: Value null at '{key[0].lower() + key[1:]}' "
                                   "failed to satisfy constraint: Member must not be null")
        return None
    if not isinstance(v, str) or not (lo <= len(v) <= hi) or (pattern and not pattern.match(v)):
        raise invalid_argument(f"1 validation error detected: Value '{v}' at '{key[0].lower() + key[1:]}' "
                               "failed to satisfy constraint")
    return v


def _int(body, key, lo, hi, required=False):
    v = body.get(key)
    if v is None:
        if required:
            raise invalid_argument(f"1 validation error detected: Value null at '{key}' failed to satisfy "
                                   "constraint: Member must not be null")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or not (lo <= v <= hi):
        raise invalid_argument(f"1 validation error detected: Value '{v}' at '{key}' failed to satisfy constraint: "
                               f"Member must have value between {lo} and {hi}")
    return int(v)


def resolve(ctx, body, arn_error="InvalidArgumentException") -> "object":
    name = _str(body, "StreamName", pattern=NAME_RE)
    arn = _str(body, "StreamARN", hi=1024)
    if arn and not ARN_RE.match(arn):
        raise KvsError(400, arn_error, f"Invalid ARN: {arn}")
    if not name and not arn:
        raise invalid_argument("Either StreamName or StreamARN must be specified.")
    return ctx.store.get_stream(name, arn)


def _active(stream):
    if stream.status != "ACTIVE":
        raise KvsError(400, "ResourceInUseException",
                       f"The stream {stream.name} is not in the ACTIVE state (current status {stream.status}).")


def _version_guard(stream, body, required):
    cv = _str(body, "CurrentVersion", hi=64, required=required, pattern=VERSION_RE)
    if cv is not None and cv != stream.version:
        raise KvsError(400, "VersionMismatchException",
                       f"The stream version {cv} does not match the current version {stream.version}.")


def _check_tags(tags):
    if not isinstance(tags, dict) or not tags:
        raise invalid_argument("Tags must be a map with 1 to 50 entries.")
    for k, v in tags.items():
        if not (1 <= len(k) <= 128) or not isinstance(v, str) or len(v) > 256:
            raise invalid_argument(f"Invalid tag: {k}")


def create_stream(ctx, body):
    name = _str(body, "StreamName", required=True, pattern=NAME_RE)
    dev = _str(body, "DeviceName", hi=128)
    mt = _str(body, "MediaType", hi=128, pattern=re.compile(r"^[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*$"))
    kms = _str(body, "KmsKeyId", hi=2048)
    ret = _int(body, "DataRetentionInHours", 0, MAX_RETENTION) or 0
    tags = body.get("Tags")
    if tags is not None:
        if isinstance(tags, dict) and len(tags) > 50:
            raise KvsError(400, "TagsPerResourceExceededLimitException",
                           "The maximum number of tags per resource (50) has been exceeded.")
        _check_tags(tags)
    if ctx.config.max_streams and len(ctx.store.list_streams()) >= ctx.config.max_streams:
        raise KvsError(400, "AccountStreamLimitExceededException",
                       "The number of streams created for the account is too high.")
    tier = _storage_tier(body.get("StreamStorageConfiguration"), required=False)
    s = ctx.store.create_stream(name, device_name=dev, media_type=mt, kms_key_id=kms, retention_hours=ret, tags=tags)
    _TIERS[s.arn] = tier or "HOT"
    return {"StreamARN": s.arn}


def describe_stream(ctx, body):
    return {"StreamInfo": resolve(ctx, body).info()}


def list_streams(ctx, body):
    maxr = _int(body, "MaxResults", 1, 10000)
    if maxr is None:
        maxr = 10  # observed (cloud-custodian): 10 per page when MaxResults is omitted
    maxr = min(maxr, 1000)  # observed: at most 1000 per page
    token = body.get("NextToken")
    after = ""
    if token is not None:
        try:
            after = json.loads(base64.b64decode(token, validate=True))["after"]
        except Exception:
            raise invalid_argument("Invalid NextToken.")
    cond = body.get("StreamNameCondition")
    prefix = None
    if cond is not None:
        if not isinstance(cond, dict):
            raise invalid_argument("Invalid StreamNameCondition.")
        op = cond.get("ComparisonOperator", "BEGINS_WITH")
        if op != "BEGINS_WITH":
            raise invalid_argument(f"Invalid ComparisonOperator: {op}")
        prefix = _str(cond, "ComparisonValue", hi=256)
    streams = [s for s in ctx.store.list_streams(prefix) if s.name > after]
    page = streams[:maxr]
    nt = None
    if len(streams) > maxr:
        nt = base64.b64encode(json.dumps({"after": page[-1].name}).encode()).decode()
    return {"StreamInfoList": [s.info() for s in page], "NextToken": nt}


def delete_stream(ctx, body):
    arn = _str(body, "StreamARN", hi=1024, required=True)
    if not ARN_RE.match(arn):
        raise invalid_argument(f"Invalid ARN: {arn}")
    s = ctx.store.get_stream(arn=arn)
    _version_guard(s, body, False)
    _active(s)
    ctx.store.delete_stream(s)
    return {}


def update_stream(ctx, body):
    s = resolve(ctx, body)
    _version_guard(s, body, True)
    _active(s)
    fields = {}
    if "DeviceName" in body:
        fields["device_name"] = _str(body, "DeviceName", hi=128)
    if "MediaType" in body:
        fields["media_type"] = _str(body, "MediaType", hi=128)
    ctx.store.update_stream(s, **fields) if fields else ctx.store.update_stream(s, status="ACTIVE")
    return {}


def update_data_retention(ctx, body):
    s = resolve(ctx, body)
    op = body.get("Operation")
    if op not in ("INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"):
        raise invalid_argument(f"1 validation error detected: Value '{op}' at 'operation' failed to satisfy "
                               "constraint: Member must satisfy enum value set: "
                               "[INCREASE_DATA_RETENTION, DECREASE_DATA_RETENTION]")
    change = _int(body, "DataRetentionChangeInHours", 1, MAX_RETENTION, required=True)
    _version_guard(s, body, True)
    _active(s)
    if ctx.config.retention_semantics == "replace":
        new = change
        if op == "INCREASE_DATA_RETENTION" and new < s.retention_hours or \
                op == "DECREASE_DATA_RETENTION" and new > s.retention_hours:
            raise invalid_argument("The new retention is not consistent with the requested operation.")
    else:
        new = s.retention_hours + change if op == "INCREASE_DATA_RETENTION" else s.retention_hours - change
        if new < 0 or new > MAX_RETENTION:
            raise invalid_argument(f"The resulting data retention ({new} hours) is out of range [0, {MAX_RETENTION}].")
    ctx.store.update_stream(s, retention_hours=new)
    return {}


def get_data_endpoint(ctx, body):
    resolve(ctx, body)
    api = body.get("APIName")
    if api not in API_NAMES:
        raise invalid_argument(f"1 validation error detected: Value '{api}' at 'aPIName' failed to satisfy "
                               "constraint: Member must satisfy enum value set")
    over = getattr(ctx.config, "data_endpoints", None) or {}
    return {"DataEndpoint": over.get(api) or over.get("*") or ctx.base_url}


def tag_stream(ctx, body):
    s = resolve(ctx, body, "InvalidResourceFormatException")
    tags = body.get("Tags")
    _check_tags(tags)
    merged = dict(s.tags)
    merged.update(tags)
    if len(merged) > 50:
        raise KvsError(400, "TagsPerResourceExceededLimitException",
                       "The maximum number of tags per resource (50) has been exceeded.")
    ctx.store.update_stream(s, tags=merged)
    return {}


def untag_stream(ctx, body):
    s = resolve(ctx, body, "InvalidResourceFormatException")
    keys = body.get("TagKeyList")
    if not isinstance(keys, list) or not (1 <= len(keys) <= 50):
        raise invalid_argument("TagKeyList must have 1 to 50 entries.")
    ctx.store.update_stream(s, tags={k: v for k, v in s.tags.items() if k not in keys})
    return {}


def list_tags_for_stream(ctx, body):
    s = resolve(ctx, body, "InvalidResourceFormatException")
    return {"Tags": s.tags, "NextToken": None}


# DefaultStorageTier per stream ARN (an ARN names one creation of a stream); HOT when never set.
# Kept in memory: a restarted kvs-local reports HOT again.
_TIERS: dict[str, str] = {}
STORAGE_TIERS = ("HOT", "WARM")


def _storage_tier(cfg, required=True):
    if cfg is None and not required:
        return None
    if not isinstance(cfg, dict) or cfg.get("DefaultStorageTier") not in STORAGE_TIERS:
        raise invalid_argument("1 validation error detected: Value at 'streamStorageConfiguration."
                               "defaultStorageTier' failed to satisfy constraint: Member must satisfy "
                               "enum value set: [HOT, WARM]")
    return cfg["DefaultStorageTier"]


def describe_stream_storage_configuration(ctx, body):
    s = resolve(ctx, body)
    return {"StreamName": s.name, "StreamARN": s.arn,
            "StreamStorageConfiguration": {"DefaultStorageTier": _TIERS.get(s.arn, "HOT")}}


def update_stream_storage_configuration(ctx, body):
    s = resolve(ctx, body)
    tier = _storage_tier(body.get("StreamStorageConfiguration"))
    _version_guard(s, body, True)
    _active(s)
    ctx.store.update_stream(s, status="ACTIVE")  # a new Version, as every metadata change
    _TIERS[s.arn] = tier
    return {}


HANDLERS = {
    "CreateStream": create_stream, "DescribeStream": describe_stream, "ListStreams": list_streams,
    "DeleteStream": delete_stream, "UpdateStream": update_stream, "UpdateDataRetention": update_data_retention,
    "GetDataEndpoint": get_data_endpoint, "TagStream": tag_stream, "UntagStream": untag_stream,
    "ListTagsForStream": list_tags_for_stream,
    "DescribeStreamStorageConfiguration": describe_stream_storage_configuration,
    "UpdateStreamStorageConfiguration": update_stream_storage_configuration,
}
