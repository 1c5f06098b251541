"""Reading what calls left in the local stack's DynamoDB (records, events, bookings, messages), for the demo and
system tests.

Uses plain boto3 against an explicit endpoint, so the reader's own process can keep moto in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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
        self._bookings_table, self._tenant_data_table = env["BOOKINGS_TABLE"], env["TENANT_DATA_TABLE"]
        self._client = boto3.client(
            "dynamodb", endpoint_url=endpoint_url, region_name=env["AWS_REGION"],
            aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2}))

    def call(self, call_sid: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._calls_table, Key={"call_sid": {"S": call_sid}},
                                     ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    async def call_once(self, call_sid: str, ready: Callable[[dict[str, Any]], Any],
                        timeout_s: float) -> dict[str, Any] | None:
        """The Call as soon as `ready` holds for it (the bridge, Twilio and the stream functions write it in turn);
        None if it does not within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            record = await asyncio.to_thread(self.call, call_sid)
            if record and ready(record):
                return record
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)

    def events(self, call_sid: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """Events in order; pass the last seq seen to read only what is new."""
        return self._query(self._events_table, "call_sid = :key AND seq > :after", call_sid,
                           {":after": {"N": str(after_seq)}})

    def bookings(self, tenant_id: str, resource: str) -> list[dict[str, Any]]:
        """Every booking on one of a business's calendars, in slot order."""
        return self._query(self._bookings_table, "tenant_resource = :key", f"{tenant_id}#{resource}")

    def tenant_items(self, tenant_id: str, sk_prefix: str) -> list[dict[str, Any]]:
        """A business's own data of one kind, e.g. its messages ("message#")."""
        return self._query(self._tenant_data_table, "tenant_id = :key AND begins_with(sk, :prefix)", tenant_id,
                           {":prefix": {"S": sk_prefix}})

    def _query(self, table: str, condition: str, key: str,
               values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items = self._client.query(TableName=table, ConsistentRead=True, KeyConditionExpression=condition,
                                   ExpressionAttributeValues={":key": {"S": key}, **(values or {})})["Items"]
        return [_plain(item) for item in items]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}
