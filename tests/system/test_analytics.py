"""Analytics end to end: simulated calls → Calls stream → stream poller → rollup Lambda → /api/analytics.

The expected figures are computed here from the Call records themselves, read straight from DynamoDB.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from local.admin_key import issue_key_in
from local.call_records import CallRecords
from local.call_simulator import place_call
from local.seed import DEMO_TENANT
from local.stack import LocalStack
from tests.system.conftest import call_config, finalised
from voiceline.rollups import LATENCY_BOUNDS_MS

pytestmark = pytest.mark.system

CALLS_PER_WAVE, WAVES = 2, 2
ROLLUP_TIMEOUT_S = 30


def tenant_calls(stack: LocalStack, tenant_id: str) -> list[dict[str, Any]]:
    """Every finished Call of the tenant, from the Calls table's tenant index."""
    client = boto3.client("dynamodb", endpoint_url=stack.dynamodb_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local",
                          config=Config(connect_timeout=2, read_timeout=5))
    deserializer = boto3.dynamodb.types.TypeDeserializer()
    pages = client.get_paginator("query").paginate(
        TableName=stack.environment()["CALLS_TABLE"], IndexName="tenant-started_at",
        KeyConditionExpression="tenant_id = :t", ExpressionAttributeValues={":t": {"S": tenant_id}})
    items = [{k: deserializer.deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]
    return [item for item in items if item.get("status") == "ended"]


def nearest_rank_bucket(values: list[float], fraction: float) -> int | None:
    """The exact nearest-rank percentile, then the upper bound of the histogram bucket it falls in."""
    if not values:
        return None
    exact = sorted(values)[max(1, math.ceil(fraction * len(values))) - 1]
    return next((bound for bound in LATENCY_BOUNDS_MS if exact <= bound), LATENCY_BOUNDS_MS[-1])


def expected_totals(calls: list[dict[str, Any]]) -> dict[str, Any]:
    tools: dict[str, dict[str, int]] = {}
    for call in calls:
        for name, counts in json.loads(call.get("tools") or "{}").items():
            figures = tools.setdefault(name, {"calls": 0, "errors": 0, "declined": 0})
            figures["calls"] += int(counts["calls"])
            figures["errors"] += int(counts["failed"])
            figures["declined"] += int(counts["declined"])
    end_reasons: dict[str, int] = {}
    for call in calls:
        end_reasons[call["end_reason"]] = end_reasons.get(call["end_reason"], 0) + 1
    latencies = [float(v) for call in calls for v in call.get("turn_latencies_ms") or []]
    greetings = [float(call["greeting_latency_ms"]) for call in calls if call.get("greeting_latency_ms") is not None]
    booking = tools.get("book_appointment", {"calls": 0, "errors": 0, "declined": 0})
    micro = sum(round(json.loads(call["cost"])["total"] * 1_000_000) for call in calls)
    return {
        "calls": len(calls),
        "minutes": round(float(sum(Decimal(call["duration_s"]) for call in calls) / 60), 2),
        "inbound": sum(call["direction"] != "outbound" for call in calls),
        "outbound": sum(call["direction"] == "outbound" for call in calls),
        "end_reasons": end_reasons,
        "transfers": end_reasons.get("transferred", 0),
        "interruptions": sum(int(call.get("interruptions") or 0) for call in calls),
        "bookings": booking["calls"] - booking["errors"] - booking["declined"],
        "tools": tools,
        "cost_usd": round(micro / 1_000_000, 6),
        "answer_latency_ms": {"p50": nearest_rank_bucket(latencies, 0.5), "p95": nearest_rank_bucket(latencies, 0.95)},
        "greeting_latency_ms": {"p50": nearest_rank_bucket(greetings, 0.5),
                                "p95": nearest_rank_bucket(greetings, 0.95)},
    }


async def test_api_totals_and_percentiles_equal_those_computed_from_the_call_records(
        stack: LocalStack, records: CallRecords, tmp_path: Path) -> None:
    key = issue_key_in(stack.environment(), DEMO_TENANT, "analytics-system-test")
    placed = []
    for wave in range(WAVES):
        reports = await asyncio.gather(*(place_call(call_config(stack, tmp_path / f"w{wave}c{n}"))
                                         for n in range(CALLS_PER_WAVE)))
        placed += [report.call_sid for report in reports]
    for call_sid in placed:
        await finalised(records, call_sid)

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=2)).isoformat()}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=10) as client:
        deadline = time.monotonic() + ROLLUP_TIMEOUT_S
        while True:  # the stream poller delivers within a second or so; wait for it, with a bound
            calls = await asyncio.to_thread(tenant_calls, stack, DEMO_TENANT)
            body = (await client.get("/api/analytics", params=window)).json()
            if body["totals"]["calls"] >= len(calls) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        hourly = (await client.get("/api/analytics", params={
            "from": (today - timedelta(hours=1)).isoformat(), "to": (today + timedelta(days=1, hours=1)).isoformat(),
            "granularity": "hour"})).json()

    assert set(placed) <= {call["call_sid"] for call in calls}
    assert body["totals"] == expected_totals(calls)
    assert body["totals"]["answer_latency_ms"]["p95"] is not None and body["totals"]["interruptions"] >= len(placed)
    assert sum(bucket["calls"] for bucket in body["series"]) == len(calls)
    assert hourly["totals"] == body["totals"]
