"""kvsfs credentials chain (src/aws/creds.c): environment, shared files, credential_process.

Runs kvsfs-creds with a clean environment (temporary HOME, config and credentials files,
instance metadata disabled) and checks which source wins, what it returns (secrets only as
SHA-256), the error sentences, and that no secret reaches stdout or the log on stderr.
The HTTP sources are in test_creds_http.py.
"""
import hashlib
import json
import os
import stat
import subprocess
import time

import pytest


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def base_env(tmp_path, **extra):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(extra)
    return env


def run(tool, env, *args, timeout=60):
    r = subprocess.run([tool("kvsfs-creds"), "--secret-sha256", "--log-level", "3", *args],
                       env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, json.loads(r.stdout), r.stderr


SECRETS = ["SKENV-secret-1", "TKENV-token-1", "SKDEF-secret-2", "SKPROD-secret-3",
           "TKPROD-token-3", "SKCFG-secret-4", "PROCSECRET", "PROCTOKEN"]


def assert_no_secret(*texts):
    for t in texts:
        for s in SECRETS:
            assert s not in t, f"secret {s} leaked"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = SKDEF-secret-2\n"
        "[prod]\naws_access_key_id = AKPROD\naws_secret_access_key = SKPROD-secret-3\n"
        "aws_session_token = TKPROD-token-3\n")
    (tmp_path / "config").write_text(
        "[default]\nregion = us-east-1\n"
        "[profile cfg]\nregion = eu-west-1\naws_access_key_id = AKCFG\n"
        "aws_secret_access_key = SKCFG-secret-4\n"
        "[prod]\naws_access_key_id = NOTAPROFILE\naws_secret_access_key = x\n")
    return tmp_path


def test_env_precedence_over_files(tool, files):
    env = base_env(files, AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY="SKENV-secret-1",
                   AWS_SESSION_TOKEN="TKENV-token-1")
    rc, out, err = run(tool, env)
    assert rc == 0
    assert out["source"] == "environment" and out["access_key_id"] == "AKENV"
    assert out["secret_sha256"] == sha("SKENV-secret-1")
    assert out["token_sha256"] == sha("TKENV-token-1")
    assert out["has_token"] and out["expiration"] is None
    assert "credentials from environment" in err
    assert_no_secret(json.dumps(out), err)


def test_default_profile_from_credentials_file(tool, files):
    rc, out, err = run(tool, base_env(files))
    assert rc == 0 and out["source"] == "credentials-file" and out["access_key_id"] == "AKDEF"
    assert out["secret_sha256"] == sha("SKDEF-secret-2") and not out["has_token"]
    assert "shared credentials file profile default" in err
    assert_no_secret(json.dumps(out), err)


def test_profile_by_aws_profile_and_option(tool, files):
    rc, out, err = run(tool, base_env(files, AWS_PROFILE="prod"))
    assert out["access_key_id"] == "AKPROD" and out["token_sha256"] == sha("TKPROD-token-3")
    # The option beats AWS_PROFILE; [profile cfg] in config; [prod] in config is not a profile.
    rc, out, err = run(tool, base_env(files, AWS_PROFILE="prod"), "--profile", "cfg")
    assert out["source"] == "config-file" and out["access_key_id"] == "AKCFG"
    assert out["region"] == "eu-west-1"
    assert "shared config file profile cfg" in err
    assert_no_secret(json.dumps(out), err)


def test_profile_option_ignores_env_keys_like_aws_cli(tool, files):
    env = base_env(files, AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY="SKENV-secret-1")
    rc, out, _ = run(tool, env, "--profile", "prod")
    assert out["access_key_id"] == "AKPROD"
    # AWS_PROFILE does not: explicit env keys still win, as with the CLI.
    env["AWS_PROFILE"] = "prod"
    rc, out, _ = run(tool, env)
    assert out["access_key_id"] == "AKENV"
    # Cross-check both rules with the AWS CLI itself.
    assert cli_export(env)["AccessKeyId"] == "AKENV"
    assert cli_export(env, "--profile", "prod")["AccessKeyId"] == "AKPROD"


def cli_export(env, *args):
    """The AWS CLI's own view of the chain (aws configure export-credentials)."""
    cli = subprocess.run(["/usr/bin/aws", "configure", "export-credentials", "--format", "process",
                          *args], env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    return json.loads(cli.stdout)


@pytest.mark.parametrize("scenario", ["env", "default", "aws_profile", "option", "config_only",
                                      "process", "process_in_credentials"])
def test_same_credentials_as_aws_cli(tool, files, scenario):
    """kvsfs and the AWS CLI pick the same credentials from the same environment and files."""
    script = write_script(files / "p.sh", "echo '{\"Version\": 1, \"AccessKeyId\": \"AKPROC\", "
                          "\"SecretAccessKey\": \"PROCSECRET\", \"SessionToken\": \"PROCTOKEN\"}'\n")
    with open(files / "config", "a") as f:
        f.write(f"[profile proc]\ncredential_process = {script}\n")
    with open(files / "credentials", "a") as f:
        f.write(f"[proc2]\ncredential_process = {script}\n")
    env = base_env(files)
    args = []
    if scenario == "env":
        env.update(AWS_ACCESS_KEY_ID="AKENV", AWS_SECRET_ACCESS_KEY="SKENV-secret-1",
                   AWS_SESSION_TOKEN="TKENV-token-1")
    elif scenario == "aws_profile":
        env["AWS_PROFILE"] = "prod"
    elif scenario == "option":
        env["AWS_PROFILE"] = "cfg"
        args = ["--profile", "prod"]
    elif scenario == "config_only":
        args = ["--profile", "cfg"]
    elif scenario == "process":
        args = ["--profile", "proc"]
    elif scenario == "process_in_credentials":
        args = ["--profile", "proc2"]
    rc, out, err = run(tool, env, *args)
    assert rc == 0, out
    ref = cli_export(env, *args)
    assert out["access_key_id"] == ref["AccessKeyId"]
    assert out["secret_sha256"] == sha(ref["SecretAccessKey"])
    assert out["token_sha256"] == (sha(ref["SessionToken"]) if ref.get("SessionToken") else None)
    assert_no_secret(json.dumps(out), err)


def test_unknown_profile(tool, files):
    rc, out, _ = run(tool, base_env(files), "--profile", "ghost")
    assert rc == 1 and out["errno"] == "ENOENT" and "ghost" in out["error"]
    rc, out, _ = run(tool, base_env(files, AWS_PROFILE="ghost"))
    assert rc == 1 and out["errno"] == "ENOENT"


def test_no_credentials_anywhere(tool, tmp_path):
    t0 = time.monotonic()
    rc, out, err = run(tool, base_env(tmp_path))
    assert rc == 1 and out["errno"] == "ENOKEY"
    assert out["error"].startswith("no AWS credentials found")
    assert out["error"].count(". ") == 0  # one sentence
    assert time.monotonic() - t0 < 5


def test_malformed_files_name_file_and_line(tool, tmp_path):
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AK\naws_secret_access_key = SKDEF-secret-2\n"
        "aws_secret_access_key = SKPROD-secret-3\n")
    rc, out, err = run(tool, base_env(tmp_path))
    assert rc == 1 and out["errno"] == "EINVAL"
    assert str(tmp_path / "credentials") in out["error"] and "line 4" in out["error"]
    assert_no_secret(json.dumps(out), err)
    (tmp_path / "credentials").write_text("")
    (tmp_path / "config").write_text("[default]\nregion = x\nSKCFG-secret-4\n")
    rc, out, err = run(tool, base_env(tmp_path))
    assert rc == 1 and "config line 3" in out["error"]
    assert_no_secret(json.dumps(out), err)
    (tmp_path / "config").write_text("[default]\naws_access_key_id = AKX\n")
    rc, out, err = run(tool, base_env(tmp_path))
    assert rc == 1 and "line 2" in out["error"] and "aws_secret_access_key" in out["error"]


def test_unsupported_profiles_fail_clearly(tool, tmp_path):
    (tmp_path / "config").write_text(
        "[profile r]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = default\n"
        "[profile s]\nsso_session = corp\n")
    for prof in ["r", "s"]:
        rc, out, _ = run(tool, base_env(tmp_path), "--profile", prof)
        assert rc == 1 and out["errno"] in ("ENOTSUP", "EOPNOTSUPP")
        assert "credential_process" in out["error"]


def write_script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_credential_process_success_and_refresh(tool, tmp_path):
    counter = tmp_path / "count"
    script = write_script(tmp_path / "proc.sh", f"""
n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
exp=$(date -u -d @$(( $(date +%s) + 3 )) +%Y-%m-%dT%H:%M:%SZ)
printf '{{"Version": 1, "AccessKeyId": "AKPROC%s", "SecretAccessKey": "PROCSECRET", "SessionToken": "PROCTOKEN", "Expiration": "%s"}}' $n $exp
""")
    (tmp_path / "config").write_text(f"[default]\ncredential_process = {script}\n")
    rc, out, err = run(tool, base_env(tmp_path))
    assert rc == 0 and out["source"] == "process" and out["access_key_id"] == "AKPROC1"
    assert out["secret_sha256"] == sha("PROCSECRET") and out["token_sha256"] == sha("PROCTOKEN")
    assert out["expiration"] is not None
    assert "credential_process of profile default" in err
    assert_no_secret(json.dumps(out), err)
    # Expiry: with a 2 s margin on 3 s credentials, the process runs again.
    counter.unlink()
    rc, out, err = run(tool, base_env(tmp_path), "--margin", "2", "--repeat", "5",
                       "--interval-ms", "700")
    assert rc == 0 and all(r == 0 for r in out["rcs"])
    assert out["keys"][0] == "AKPROC1" and out["keys"][-1] != "AKPROC1"
    assert out["fetches"] >= 2 and int(counter.read_text()) == out["fetches"]
    assert_no_secret(json.dumps(out), err)


@pytest.mark.parametrize("cmd,errno_name,words", [
    ("sh -c 'echo PROCSECRET; exit 2'", "EACCES", "status 2"),
    ("echo '{\"Version\": 1, \"AccessKeyId\": '", "EINVAL", "JSON"),
    ("echo '{\"Version\": 2, \"AccessKeyId\": \"a\", \"SecretAccessKey\": \"PROCSECRET\"}'",
     "EINVAL", "Version"),
    ("echo '{\"Version\": 1, \"AccessKeyId\": \"a\"}'", "EINVAL", "SecretAccessKey"),
    ("echo '{\"Version\": 1, \"AccessKeyId\": \"a\", \"SecretAccessKey\": \"PROCSECRET\", "
     "\"Expiration\": \"tomorrow\"}'", "EINVAL", "Expiration"),
    ("sleep 30", "ETIMEDOUT", "timed out"),
    ("yes PROCSECRET", "EFBIG", "64 KiB"),
])
def test_credential_process_failures(tool, tmp_path, cmd, errno_name, words):
    (tmp_path / "config").write_text(f"[default]\ncredential_process = {cmd}\n")
    t0 = time.monotonic()
    rc, out, err = run(tool, base_env(tmp_path), "--process-timeout-ms", "2000")
    assert rc == 1 and out["errno"] == errno_name, out
    assert words in out["error"] and "credential_process" in out["error"]
    assert time.monotonic() - t0 < 10
    assert_no_secret(json.dumps(out), err)


def test_credentials_file_keys_beat_process(tool, tmp_path):
    (tmp_path / "config").write_text("[default]\ncredential_process = false\n")
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = SKDEF-secret-2\n")
    rc, out, _ = run(tool, base_env(tmp_path))
    assert rc == 0 and out["source"] == "credentials-file"
