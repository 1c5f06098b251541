"""The local stack's DynamoDB server: moto's, serving as usual, without keeping every object it makes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import boto3
import pytest

from local.stack import ROOT, free_port, wait_listening


@pytest.fixture
def moto_url() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "local.moto_server", "-H", "127.0.0.1", "-p", str(port)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
        try:
            wait_listening(server, port, "local.moto_server")
            yield url
        finally:
            server.terminate()
            assert server.wait(timeout=10) == 0  # SIGTERM: moto exits cleanly, without a long final collection


def test_transactions_are_applied_and_no_copy_of_a_table_is_kept(moto_url: str) -> None:
    """Plain moto keeps every Item it makes, here over a hundred (each transaction item copies the table), and
    16 Tables."""
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    client.create_table(TableName="rollups", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")
    for batch in range(3):
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": "rollups", "Item": {"pk": {"S": f"{batch}-{item}"}}}} for item in range(5)])

    assert client.scan(TableName="rollups", Select="COUNT")["Count"] == 15
    with urllib.request.urlopen(f"{moto_url}/moto-api/data.json", timeout=5) as response:
        tracked = json.load(response)["dynamodb"]
    assert (len(tracked["Item"]), len(tracked["Table"])) == (0, 0)
