"""GET /api/analytics: a tenant's (or one agent's) call figures per hour or day, read from the rollups only."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from admin_auth import Tenant
from calls_routes import _invalid_query, _utc
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from voiceline import rollups

router = APIRouter(prefix="/api/analytics", tags=["analytics"])

_AGENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_RANGE = {"hour": timedelta(days=31), "day": timedelta(days=400)}


class Latency(BaseModel):
    """Nearest-rank percentiles, exact to the histogram bucket: the bucket's upper bound in ms (null: no values)."""

    p50: int | None
    p95: int | None


class ToolFigures(BaseModel):
    calls: int
    errors: int = Field(description="Calls that failed: timeouts, crashes, invalid arguments.")
    declined: int = Field(description="Calls the tool answered with a refusal, e.g. a slot already taken.")


class Figures(BaseModel):
    """What the calls that started in a bucket (or the whole range) add up to."""

    calls: int
    minutes: float
    inbound: int
    outbound: int
    end_reasons: dict[str, int] = Field(description="Calls per end reason, e.g. agent_hung_up, transferred.")
    transfers: int
    interruptions: int = Field(description="Times a caller talked over the agent (barge-ins).")
    bookings: int = Field(description="Successful book_appointment calls.")
    tools: dict[str, ToolFigures]
    cost_usd: float = Field(description="Sum of the calls' cost breakdowns (voiceline.pricing), USD.")
    answer_latency_ms: Latency = Field(description="From the caller's end of speech to the agent's first audio.")
    greeting_latency_ms: Latency


class BucketFigures(Figures):
    bucket: str = Field(description='UTC: "2026-11-21" for a day, "2026-11-21T13" for an hour.')


class Analytics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    granularity: Literal["hour", "day"]
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    agent_id: str | None
    series: list[BucketFigures] = Field(description="Every bucket in [from, to), zeros where there were no calls.")
    totals: Figures


def _figures(totals: rollups.BucketTotals) -> dict[str, object]:
    tools = {}
    for counter in totals.prefixed("tool:"):
        name = counter.rsplit(":", 1)[0]
        tools[name] = ToolFigures(**{kind: totals.prefixed(f"tool:{name}:").get(kind, 0)
                                     for kind in ("calls", "errors", "declined")})

    def latency(histogram: str) -> Latency:
        counts = totals.prefixed(f"{histogram}:")
        return Latency(p50=rollups.histogram_percentile(counts, 0.50), p95=rollups.histogram_percentile(counts, 0.95))

    number = totals.number
    return {"calls": int(number("calls")), "minutes": round(float(number("seconds") / 60), 2),
            "inbound": int(number("inbound")), "outbound": int(number("outbound")),
            "end_reasons": totals.prefixed("end:"), "transfers": int(number("transfers")),
            "interruptions": int(number("interruptions")), "bookings": int(number("bookings")), "tools": tools,
            "cost_usd": round(float(number("cost_micro_usd") / Decimal(rollups.MICRO)), 6),
            "answer_latency_ms": latency("answer_ms"), "greeting_latency_ms": latency("greeting_ms")}


@router.get("", response_model=Analytics, summary="Call figures per hour or day, with totals",
            responses={422: {"description": "Bad granularity, agent id, or range (from must be before to; at most "
                                            "31 days by hour, 400 days by day)."}})
def get_analytics(
    tenant: Tenant,
    start: Annotated[datetime, Query(alias="from", description="Range start, ISO 8601 (UTC if no zone); rounded "
                                                               "down to its bucket.")],
    end: Annotated[datetime, Query(alias="to", description="Range end, exclusive.")],
    granularity: Annotated[Literal["hour", "day"], Query()] = "day",
    agent: Annotated[str | None, Query(max_length=128, description="Only this agent's calls.")] = None,
) -> Analytics:
    """Series and totals from the hourly or daily rollups: one Query of at most as many items as buckets.

    The tenant is the API key's. Calls count in the bucket in which they started (UTC). An agent's figures
    stay readable after the agent is deleted.
    """
    start, end = _utc(start, "from"), _utc(end, "to")
    assert start is not None and end is not None
    if start >= end:
        raise _invalid_query("to", "must be after from", end)
    if end - start > MAX_RANGE[granularity]:
        raise _invalid_query("to", f"is more than {MAX_RANGE[granularity].days} days after from "
                                   f"for granularity {granularity}", end)
    if agent is not None and not _AGENT_ID.fullmatch(agent):
        raise _invalid_query("agent", "is not an agent id", agent)
    series = rollups.read_series(tenant, agent, granularity, start, end)
    return Analytics(granularity=granularity, start=start, end=end, agent_id=agent,
                     series=[BucketFigures(bucket=bucket.bucket, **_figures(bucket)) for bucket in series],
                     totals=Figures(**_figures(rollups.summed(series))))
