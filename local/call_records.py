"""Reading a call's record and events from the local stack's DynamoDB, for the demo and system tests.

Uses plain boto3 against an explicit endpoint, so the reader's own process can keep moto in-process.
"""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config

from local.environment import local_environment

_deserializer = TypeDeserializer()


class CallRecords:
    def __init__(self, endpoint_url: str) -> None:
        env = local_environment()
        self._calls_table, self._events_table = env["CALLS_TABLE"], env["CALL_EVENTS_TABLE"]
        self._client = boto3.client(
            "dynamodb", endpoint_url=endpoint_url, region_name=env["AWS_REGION"],
            aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2}))

    def call(self, call_sid: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._calls_table, Key={"call_sid": {"S": call_sid}},
                                     ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    def events(self, call_sid: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """Events in order; pass the last seq seen to read only what is new."""
        items = self._client.query(
            TableName=self._events_table, ConsistentRead=True,
            KeyConditionExpression="call_sid = :sid AND seq > :after",
            ExpressionAttributeValues={":sid": {"S": call_sid}, ":after": {"N": str(after_seq)}})["Items"]
        return [_plain(item) for item in items]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}
