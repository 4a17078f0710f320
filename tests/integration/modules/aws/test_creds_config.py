"""kvsfs shared config/credentials parser (src/aws/awsconfig.c) against the AWS CLI's own reader.

The reference is botocore (Debian's python3-botocore, which /usr/bin/aws uses):
botocore.configloader.raw_config_parse() and build_profile_map(). Every file, hand-written
or randomly generated, is parsed by both; they must agree on whether the file is malformed and,
when it is not, on every section, key and value (nested sub-sections included) and on the
profile map. `kvsfs-creds --dump-config FILE --kind K` prints our parse as JSON.

Also covers region resolution order and endpoint derivation through the tool.
"""
import json
import os
import random
import subprocess

import pytest

botocore_configloader = pytest.importorskip("botocore.configloader")
botocore_exceptions = pytest.importorskip("botocore.exceptions")


def ours(tool, path, kind):
    out = subprocess.run([tool("kvsfs-creds"), "--dump-config", str(path), "--kind", kind],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out)


def reference(path, kind):
    try:
        raw = botocore_configloader.raw_config_parse(str(path))
    except botocore_exceptions.ConfigParseError:
        return None
    profiles = botocore_configloader.build_profile_map(raw)["profiles"] if kind == "config" else None
    return raw, profiles


def compare(tool, tmp_path, text, kind, name="f"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    got = ours(tool, p, kind)
    ref = reference(p, kind)
    if ref is None:
        assert "error" in got, f"botocore refuses this file but kvsfs accepts it: {text!r}"
        return got
    assert "error" not in got, f"kvsfs refuses a file botocore accepts ({got}): {text!r}"
    raw, profiles = ref
    assert got["sections"] == raw, text
    if kind == "config":
        assert got["profiles"] == profiles, text
    return got


HAND_CASES = [
    "[default]\nregion = us-east-1\n",
    "[default]\nregion=us-east-1",
    "[default]\r\nregion = us-east-1\r\noutput = json\r\n",
    "[default]\rregion = us-east-1\r",
    "# c\n; c\n[default]\n  # indented comment\nregion = a # not a comment\n",
    "[default]\nRegion = a\nOUTPUT: json\n",
    "[default]\nregion = a\nregion = b\n",
    "[default]\nregion = a\n[default]\n",
    "region = a\n",
    "\n\n[default]\n\n\nregion = a\n\n",
    "[default]\njust words\n",
    "[default]\n= value\n",
    "[default]\n: value\n",
    "[default]\nk = v = w\nk2 = a:b\nk3: a=b\n",
    "[default]\ns3 =\n  addressing_style = path\n  max_concurrent_requests = 10\n",
    "[default]\ns3 =\n  addressing_style = path\n  addressing_style = virtual\n",
    "[default]\ns3 =\n\n  addressing_style = path\n\n  # c\n  x=1\nregion = r\n",
    "[default]\ns3 =\n  addressing_style\n",
    "[default]\nk = a\n  b\n\n  c\nnext = 1\n",
    "[default]\nk = a\n\tb\n",
    "[default]\n  k = a\n  j = b\n",
    "[default]\n  k = a\n    j = b\n",
    "[default]\nk =\n\n\n",
    "[default]\nk =   \n",
    "[profile prod]\nregion = eu-west-1\n[profile dev]\nregion = us-west-2\n",
    "[profile \"with space\"]\na = 1\n",
    "[profile 'single quoted']\na = 1\n",
    "[profilex y]\na = 1\n",
    "[profile a b]\na = 1\n",
    "[profile 'unclosed]\na = 1\n",
    "[profile]\na = 1\n",
    "[profile  spaced  ]\na = 1\n",
    "[default]\nr = 1\n[profile default]\no = 2\n",
    "[profile default]\no = 2\n[default]\nr = 1\n",
    "[a]b]\nk = v\n",
    "[tail] junk\nk = v\n",
    "[]\n",
    "[default]\n[]\n",
    "[DEFAULT]\nregion = eu-north-1\n[profile p]\nout = b\n",
    "[DEFAULT]\nregion = eu-north-1\n",
    "[DEFAULT]\nx = 1\n[default]\ny = 2\n[DEFAULT]\nz = 3\n",
    "[DEFAULT]\nx = 1\n[DEFAULT]\nx = 2\n",
    "[sso-session s]\nsso_region = us-east-1\n[services x]\ns3 =\n  endpoint_url = http://h\n",
    "[default]\nk = \u00e9t\u00e9 \u2603\n",
    "\ufeff[default]\nk = v\n",
    "[default]\nk = v\n\t\n  \n",
    "[default]\nkey with spaces = v\n",
    "[default]\nk = v\n[profile x]\n",
    "  [default]\nk = v\n",
    "[default]\n  [notsection]\n",
    "[default]\nk =\n  [x]\n",
    "[default]\nk = a\n  [x] = y\n",
]


@pytest.mark.parametrize("kind", ["config", "credentials"])
@pytest.mark.parametrize("idx", range(len(HAND_CASES)))
def test_hand_cases_match_botocore(tool, tmp_path, kind, idx):
    compare(tool, tmp_path, HAND_CASES[idx], kind)


def test_invalid_utf8_refused_like_botocore(tool, tmp_path):
    got = compare(tool, tmp_path, b"[default]\nk = \xff\xfe\n", "config")
    assert got["line"] == 2


def gen_file(rng):
    """A random file built from the constructs that matter to configparser."""
    names = ["default", "profile a", "profile b", "profile \"c d\"", "a", "b", "DEFAULT",
             "profile default", "sso-session s", "x]y", "profile  a", "profilez q", "c",
             "profile e", "profile 'f g'", "profile h i", "d", "services s"]
    keys = ["region", "Region", "output", "s3", "aws_access_key_id", "k", "k2", "a b", "k3",
            "k4", "k5", "sso_region", "cli_pager", "x", "y", "z"]
    vals = ["", "v", "us-east-1", "a=b", "x: y", "# c", "; c", "[x]", "v  v", "\u00e9"]
    ws = ["", " ", "  ", "\t", " \t "]
    lines = []
    for _ in range(rng.randint(0, 14)):
        r = rng.random()
        if r < 0.18:
            lines.append(rng.choice(ws[:2]) + "[" + rng.choice(names) + "]" + rng.choice(["", " ", " junk"]))
        elif r < 0.55:
            lines.append(rng.choice(ws[:2]) + rng.choice(keys) + rng.choice(ws) + rng.choice("==:")
                         + rng.choice(ws) + rng.choice(vals) + rng.choice(ws))
        elif r < 0.68:
            lines.append(rng.choice(ws[1:]) + rng.choice(["addressing_style = path", "x=1",
                                                             "y = 2", "cont", "z"]))
        elif r < 0.78:
            lines.append(rng.choice(ws) + rng.choice(["# comment", "; comment", "#", ";x"]))
        elif r < 0.97:
            lines.append(rng.choice(ws))
        else:
            lines.append(rng.choice(["words", "= v", "[", "]", "[]", "[ ]"]))
    nl = rng.choice(["\n", "\r\n", "\r"])
    text = nl.join(lines)
    if rng.random() < 0.7:
        text += nl
    return text


@pytest.mark.parametrize("kind", ["config", "credentials"])
def test_random_files_match_botocore(tool, tmp_path, kind):
    rng = random.Random(20240501 + (kind == "config"))
    accepted = refused = 0
    for i in range(400):
        text = gen_file(rng)
        got = compare(tool, tmp_path, text, kind, name=f"r{i}")
        if "error" in got:
            refused += 1
        else:
            accepted += 1
    # The generator must exercise both outcomes to mean anything.
    assert accepted > 80 and refused > 40, (accepted, refused)


def test_size_limit(tool, tmp_path):
    p = tmp_path / "big"
    p.write_bytes(b"[default]\n" + b"# padding\n" * 110000)
    got = ours(tool, p, "config")
    assert got["rc"] == -27  # -EFBIG
    assert got["error"] == "file too large"


# ---- region and endpoints through the chain tool ----

def base_env(tmp_path, **extra):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "AKIDREGIONTEST",
        "AWS_SECRET_ACCESS_KEY": "region-test-secret",
    }
    env.update(extra)
    return env


def run_tool(tool, env, *args):
    r = subprocess.run([tool("kvsfs-creds"), *args], env=env, capture_output=True, text=True,
                       timeout=30)
    return r.returncode, json.loads(r.stdout), r.stderr


def test_region_resolution_order(tool, tmp_path):
    (tmp_path / "config").write_text("[default]\nregion = sa-east-1\n[profile p]\nregion = eu-south-1\n")
    env = base_env(tmp_path, AWS_REGION="us-west-2", AWS_DEFAULT_REGION="eu-west-1")
    rc, out, _ = run_tool(tool, env, "--region", "ap-south-1")
    assert rc == 0 and (out["region"], out["region_source"]) == ("ap-south-1", "option")
    rc, out, _ = run_tool(tool, env)
    assert (out["region"], out["region_source"]) == ("us-west-2", "AWS_REGION")
    del env["AWS_REGION"]
    rc, out, _ = run_tool(tool, env)
    assert (out["region"], out["region_source"]) == ("eu-west-1", "AWS_DEFAULT_REGION")
    del env["AWS_DEFAULT_REGION"]
    rc, out, _ = run_tool(tool, env)
    assert (out["region"], out["region_source"]) == ("sa-east-1", "profile")
    env["AWS_PROFILE"] = "p"
    rc, out, _ = run_tool(tool, env)
    assert (out["region"], out["region_source"]) == ("eu-south-1", "profile")
    # The AWS CLI agrees on the profile region.
    cli = subprocess.run(["/usr/bin/aws", "configure", "get", "region"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.stdout.strip() == "eu-south-1"


def test_no_region_and_invalid_region(tool, tmp_path):
    env = base_env(tmp_path)
    rc, out, _ = run_tool(tool, env)
    assert rc == 0 and out["region"] is None and "region" in out["region_error"]
    env["AWS_REGION"] = "us_east_1"
    rc, out, _ = run_tool(tool, env)
    assert out["region"] is None and "AWS_REGION" in out["region_error"]


def test_endpoint_derivation_and_http_only_when_explicit(tool, tmp_path):
    env = base_env(tmp_path, AWS_REGION="eu-central-1")
    rc, out, _ = run_tool(tool, env)
    assert out["kvs_endpoint"] == "https://kinesisvideo.eu-central-1.amazonaws.com"
    assert out["s3_endpoint"] == "https://s3.eu-central-1.amazonaws.com"
    env["AWS_REGION"] = "cn-northwest-1"
    rc, out, _ = run_tool(tool, env)
    assert out["kvs_endpoint"] == "https://kinesisvideo.cn-northwest-1.amazonaws.com.cn"
    assert out["s3_endpoint"] == "https://s3.cn-northwest-1.amazonaws.com.cn"
    rc, out, _ = run_tool(tool, env, "--endpoint", "http://127.0.0.1:4566/",
                          "--s3-endpoint", "http://127.0.0.1:9000")
    assert out["kvs_endpoint"] == "http://127.0.0.1:4566"
    assert out["s3_endpoint"] == "http://127.0.0.1:9000"
    for bad in ["ftp://h", "http://user:pw@h", "127.0.0.1:4566", "http://h:70000"]:
        rc, out, _ = run_tool(tool, env, "--endpoint", bad)
        assert out["kvs_endpoint"] is None and "endpoint" in out["region_error"], bad
        assert "pw" not in out["region_error"]
