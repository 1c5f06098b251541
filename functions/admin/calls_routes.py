"""GET /api/calls: a tenant's call history, newest first, a page at a time; GET /api/calls/{sid}: one call in full."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from admin_auth import Tenant
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from voiceline import call_history
from voiceline.agents import get_agent
from voiceline.models import Call, CallEvent
from voiceline.ownership import owned_item

router = APIRouter(prefix="/api/calls", tags=["calls"])

_CALL_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_AGENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_INTERNAL = {"tenant_id", "twilio_status_rank"}  # ours: the caller knows its tenant, the rank orders statuses
_SUMMARY = ("call_sid", "agent_id", "direction", "from_number", "to_number", "status", "started_at", "ended_at",
            "duration_s", "end_reason", "twilio_status", "answered_by")


class CallSummary(BaseModel):
    """One call in a list."""

    call_sid: str
    agent_id: str
    direction: str
    from_number: str
    to_number: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    duration_s: float | None = None
    end_reason: str | None = None
    twilio_status: str | None = None
    answered_by: str | None = None
    cost_usd: float | None = Field(None, description="The call's total cost estimate (the detail has the breakdown).")


class CallList(BaseModel):
    calls: list[CallSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next, older page; null on the last page.")


class CallEventOut(BaseModel):
    """One thing that happened: a transcript line, a tool call, an interruption, a transfer, an error…"""

    seq: int
    kind: str
    at_ms: int = Field(description="Milliseconds from the start of the media stream.")
    role: str | None = None
    text: str | None = None
    data: dict[str, Any] | None = None


class CallDetail(CallSummary):
    """The call with its metrics (and any attribute the Call record gains later), and its events in order."""

    model_config = ConfigDict(extra="allow")

    stream_started_at: datetime | None = None
    greeting_latency_ms: float | None = None
    setup_reads_ms: float | None = Field(None, description="Of the greeting latency: DynamoDB reads at call start.")
    turn_latency_p50_ms: float | None = None
    turn_latency_p95_ms: float | None = None
    turn_latencies_ms: list[float] | None = None
    interruptions: int | None = None
    tool_calls: int | None = None
    tools: dict[str, Any] | None = Field(None, description="Per tool: calls, declined, failed, p50_ms, p95_ms.")
    usage: dict[str, Any] | None = None
    events_dropped: int | None = None
    twilio_duration_s: float | None = None
    variables: dict[str, Any] | None = None
    cost: dict[str, Any] | None = Field(None, description="voiceline.pricing's breakdown, USD: openai (by modality), "
                                                          "twilio, aws (estimate), total, prices_version.")
    summary: dict[str, Any] | None = Field(
        None, description="The post-call summary once written: summary, intent, outcome, fields (the agent's "
                          "summary_schema), model, source (\"openai\" or \"scripted stand-in\"), created_at.")
    events: list[CallEventOut]


def _invalid_query(name: str, message: str, value: Any) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, naming the query parameter."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message,
                                    "input": str(value)}])


def _utc(value: datetime | None, name: str) -> datetime | None:
    """A naive time is UTC; one that cannot be expressed in UTC (year 9999 west of Greenwich) is invalid."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise _invalid_query(name, "is out of range", value) from None


def _record(call: Call) -> dict[str, Any]:
    return {name: value for name, value in call.attribute_values.items() if name not in _INTERNAL}


def _event(event: CallEvent) -> CallEventOut:
    return CallEventOut(seq=int(event.seq), kind=event.kind, at_ms=int(event.at_ms), role=event.role,
                        text=event.text, data=event.data)


@router.get("", response_model=CallList, summary="List calls, newest first")
def list_calls(
    tenant: Tenant,
    agent: Annotated[str | None, Query(max_length=128, description="Only this agent's calls.")] = None,
    start: Annotated[datetime | None, Query(alias="from", description="Started at or after (ISO 8601).")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Started at or before (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=call_history.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=2_000, description="next_cursor of the previous page.")] = None,
) -> CallList:
    start, end = _utc(start, "from"), _utc(end, "to")
    if start and end and start > end:
        raise _invalid_query("to", "must not be before from", end)
    if agent is not None:
        if not _AGENT_ID.fullmatch(agent):
            return CallList(calls=[], next_cursor=None)  # no agent has such an id, so no call does
        owner = get_agent(agent)
        if owner is not None and owner.tenant_id != tenant:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "agent not found")
    try:
        page = call_history.list_calls(tenant, agent, start, end, limit, cursor)
    except call_history.InvalidCursor as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid cursor: {error}") from None
    return CallList(calls=[CallSummary(**{name: getattr(call, name) for name in _SUMMARY},
                                       cost_usd=(call.cost or {}).get("total")) for call in page.calls],
                    next_cursor=page.next_cursor)


@router.get("/{call_sid}", response_model=CallDetail, responses={404: {"description": "No such call for this tenant."}},
            summary="A call with its metrics and events")
def get_call_detail(tenant: Tenant, call_sid: str) -> CallDetail:
    call = owned_item(Call, call_sid, tenant) if _CALL_SID.fullmatch(call_sid) else None
    if call is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "call not found")
    return CallDetail(**_record(call), cost_usd=(call.cost or {}).get("total"),
                      events=[_event(event) for event in call_history.call_events(call_sid)])
