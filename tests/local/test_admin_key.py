"""`python -m local.admin_key` (make admin-key) against a DynamoDB server, as against the running local stack."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.admin_key import issue_key_in
from local.environment import DEFAULTS
from local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dynamodb_server() -> Iterator[dict[str, str]]:
    """A moto server with the stack's tables, and the environment that points at it."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**os.environ, **DEFAULTS, "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{port}"}
    try:
        subprocess.run([sys.executable, "-c", "from local.dynamo import create_tables; create_tables()"], env=env,
                       cwd=ROOT, check=True, timeout=60)
        yield env
    finally:
        server.stop()


def admin_key(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "local.admin_key", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def test_it_creates_the_tenant_and_prints_a_key_stored_only_as_its_hash(dynamodb_server: dict[str, str]) -> None:
    first = admin_key(dynamodb_server, "--tenant", "acme-plumbing", "--tenant-name", "Acme Plumbing")
    second = admin_key(dynamodb_server, "--tenant", "acme-plumbing", "--name", "laptop")

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    keys = [first.stdout.strip(), second.stdout.strip()]
    assert all(key.startswith("vl_") for key in keys) and keys[0] != keys[1]
    assert "created tenant acme-plumbing" in first.stderr and "existing tenant acme-plumbing" in second.stderr
    client = boto3.client("dynamodb", endpoint_url=dynamodb_server["AWS_ENDPOINT_URL_DYNAMODB"],
                          region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    for key, name in zip(keys, ("admin", "laptop"), strict=True):
        item = client.get_item(TableName=DEFAULTS["API_KEYS_TABLE"],
                               Key={"key_hash": {"S": hashlib.sha256(key.encode()).hexdigest()}})["Item"]
        assert (item["tenant_id"]["S"], item["name"]["S"]) == ("acme-plumbing", name)
        assert key not in str(item)
    profile = client.get_item(TableName=DEFAULTS["TENANT_DATA_TABLE"],
                              Key={"tenant_id": {"S": "acme-plumbing"}, "sk": {"S": "profile"}})["Item"]
    assert "Acme Plumbing" in profile["data"]["S"]


def test_a_bad_tenant_id_or_an_unreachable_stack_is_a_clear_error(dynamodb_server: dict[str, str]) -> None:
    bad = admin_key(dynamodb_server, "--tenant", "Acme Plumbing!")
    assert bad.returncode == 2 and "tenant id" in bad.stderr and bad.stdout == ""

    unreachable = admin_key({**dynamodb_server, "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{free_port()}"},
                            "--tenant", "acme")
    assert unreachable.returncode == 1 and "Is the local stack running (make dev)?" in unreachable.stderr
    assert unreachable.stdout == ""


def test_issue_key_in_returns_the_printed_key_or_raises_with_the_commands_error(
        dynamodb_server: dict[str, str]) -> None:
    key = issue_key_in(dynamodb_server, "acme-plumbing", "dashboard")
    assert key.startswith("vl_") and "\n" not in key

    with pytest.raises(RuntimeError, match="tenant id"):
        issue_key_in(dynamodb_server, "Acme Plumbing!", "dashboard")
