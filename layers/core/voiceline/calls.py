"""The Call aggregate: create, follow Twilio's status, append events, finalise."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pynamodb.constants import NONE
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from voiceline import pricing
from voiceline.models import Call, CallEvent
from voiceline.ownership import condition_failed
from voiceline.stats import percentile

# Twilio status callbacks can arrive late or repeated; a status never moves backwards.
_TWILIO_STATUS_RANK = {
    "queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3,
    "completed": 4, "busy": 4, "failed": 4, "no-answer": 4, "canceled": 4,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_call(call_sid: str, tenant_id: str, agent_id: str, from_number: str, to_number: str,
                direction: str = "inbound", *, variables: dict[str, str] | None = None,
                answered_by: str | None = None) -> Call:
    """Write the Call, or add to it what this writer knows, and return it as it now stands.

    Whoever writes first sets who, when and how: Twilio retrying the voice webhook must not reset a
    call, and an outbound call is written twice, by the admin API when it places it and by the voice
    webhook when the callee answers (in either order). `variables` and `answered_by` are only ever
    known to one of them.
    """
    first_write = (
        (Call.tenant_id, tenant_id), (Call.agent_id, agent_id), (Call.from_number, from_number),
        (Call.to_number, to_number), (Call.direction, direction), (Call.status, "ringing"),
        (Call.started_at, utcnow()),
    )
    actions = [attribute.set(attribute | value) for attribute, value in first_write]  # if_not_exists
    if variables is not None:
        actions.append(Call.variables.set(variables))
    if answered_by is not None:
        actions.append(Call.answered_by.set(answered_by))
    call = Call(call_sid)
    call.update(actions=actions)
    return call


def _update_call(call_sid: str, actions: list[Action], condition: Condition | None = None) -> None:
    """UpdateItem without the item back. `Model.update` always asks for ALL_NEW and parses it, and none of
    these writers reads it: on the bridge, whose core relays the audio, that is 0.2-0.3 ms of CPU a write."""
    Call._get_connection().update_item(call_sid, actions=actions, condition=condition, return_values=NONE)


def end_unstreamed_call(call_sid: str, end_reason: str) -> None:
    """Finish a call the voice webhook answered itself (an answering machine), since no bridge ever will.

    Only an outbound call has AMD, so its cost is known without reading the record back.
    """
    ended = utcnow()
    cost = pricing.call_cost(pricing.CallFacts(model="", direction="outbound", duration_s=0, usage={}, amd=True))
    _update_call(call_sid, [Call.status.set("ended"), Call.end_reason.set(end_reason), Call.ended_at.set(ended),
                            Call.duration_s.set(0), Call.cost.set(cost)], Call.call_sid.exists())


def record_twilio_status(call_sid: str, status: str, duration_s: int | None) -> bool:
    """Store Twilio's own status; repeated or out-of-order callbacks never regress it.

    Returns False when the call is unknown or the update was stale.
    """
    rank = _TWILIO_STATUS_RANK.get(status, 0)
    actions = [Call.twilio_status.set(status), Call.twilio_status_rank.set(rank)]
    if duration_s is not None:
        actions.append(Call.twilio_duration_s.set(duration_s))
    condition = Call.call_sid.exists() & (
        Call.twilio_status_rank.does_not_exist() | (Call.twilio_status_rank <= rank))
    try:
        _update_call(call_sid, actions, condition)
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def mark_stream_started(call_sid: str, stream_sid: str, started_at: datetime) -> None:
    _update_call(call_sid, [Call.status.set("in_progress"), Call.stream_sid.set(stream_sid),
                            Call.stream_started_at.set(started_at)], Call.call_sid.exists())


class ToolOutcome(NamedTuple):
    outcome: str  # "ok"; "tool_error" when the tool declined (slot_taken…); anything else is a failure
    duration_ms: float


@dataclass
class CallOutcome:
    """What the bridge measured over a call, written once when it ends."""

    end_reason: str
    ended_at: datetime
    duration_s: float
    greeting_latency_ms: float | None = None
    setup_reads_ms: float | None = None
    turn_latencies_ms: list[float] = field(default_factory=list)
    interruptions: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    events_dropped: int = 0
    tool_outcomes: dict[str, list[ToolOutcome]] = field(default_factory=dict)
    model: str = ""  # the agent's realtime model, which sets the token prices
    events_written: int = 0


def _cost(call_sid: str, outcome: CallOutcome, tool_calls: int) -> dict[str, Any]:
    """The call's price breakdown; direction and whether Twilio ran AMD are the record's, not the bridge's, to know."""
    known = Call.get(call_sid, attributes_to_get=["direction", "answered_by"])
    return pricing.call_cost(pricing.CallFacts(
        model=outcome.model, direction=known.direction, duration_s=outcome.duration_s, usage=outcome.usage,
        tool_calls=tool_calls, events_written=outcome.events_written, amd=known.answered_by is not None))


def tool_summary(tool_outcomes: dict[str, list[ToolOutcome]]) -> dict[str, dict[str, Any]]:
    """Per tool: calls, how many it declined and how many failed, and its round trip p50/p95 as the bridge saw it."""
    summary = {}
    for name, outcomes in tool_outcomes.items():
        durations = [outcome.duration_ms for outcome in outcomes]
        summary[name] = {"calls": len(outcomes),
                         "declined": sum(outcome.outcome == "tool_error" for outcome in outcomes),
                         "failed": sum(outcome.outcome not in ("ok", "tool_error") for outcome in outcomes),
                         "p50_ms": percentile(durations, 0.50), "p95_ms": percentile(durations, 0.95)}
    return summary


def finalise_call(call_sid: str, outcome: CallOutcome) -> None:
    latencies = [round(v, 1) for v in outcome.turn_latencies_ms]
    tool_calls = sum(len(outcomes) for outcomes in outcome.tool_outcomes.values())
    cost = _cost(call_sid, outcome, tool_calls)
    actions = [
        Call.status.set("ended"),
        Call.end_reason.set(outcome.end_reason),
        Call.ended_at.set(outcome.ended_at),
        Call.duration_s.set(round(outcome.duration_s, 2)),
        Call.interruptions.set(outcome.interruptions),
        Call.usage.set(outcome.usage),
        Call.events_dropped.set(outcome.events_dropped),
        Call.turn_latencies_ms.set(latencies),
        Call.tools.set(tool_summary(outcome.tool_outcomes)),
        Call.tool_calls.set(tool_calls),
        Call.cost.set(cost),
    ]
    if outcome.greeting_latency_ms is not None:
        actions.append(Call.greeting_latency_ms.set(round(outcome.greeting_latency_ms, 1)))
    if outcome.setup_reads_ms is not None:
        actions.append(Call.setup_reads_ms.set(round(outcome.setup_reads_ms, 1)))
    if latencies:
        actions.append(Call.turn_latency_p50_ms.set(percentile(latencies, 0.50)))
        actions.append(Call.turn_latency_p95_ms.set(percentile(latencies, 0.95)))
    _update_call(call_sid, actions, Call.call_sid.exists())


@dataclass
class NewEvent:
    """A CallEvent before it has a sequence number."""

    kind: str
    at_ms: int
    role: str | None = None
    text: str | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventBatch:
    """One call's events, to be numbered consecutively from `first_seq`."""

    call_sid: str
    first_seq: int
    events: Sequence[NewEvent]


def write_event_batches(batches: Iterable[EventBatch]) -> None:
    """Write several calls' batches in shared BatchWriteItem requests (25 items each).

    Writing the same (call_sid, seq) twice overwrites, so a retried batch never duplicates.
    """
    with CallEvent.batch_write() as writer:
        for batch in batches:
            for seq, event in enumerate(batch.events, start=batch.first_seq):
                writer.save(CallEvent(batch.call_sid, seq, kind=event.kind, at_ms=event.at_ms, role=event.role,
                                      text=event.text, data=event.data))


def append_events(call_sid: str, first_seq: int, events: Sequence[NewEvent]) -> int:
    """Write one call's events with consecutive sequence numbers from first_seq; returns the next free seq."""
    write_event_batches([EventBatch(call_sid, first_seq, events)])
    return first_seq + len(events)


def get_call(call_sid: str) -> Call | None:
    try:
        return Call.get(call_sid)
    except Call.DoesNotExist:
        return None


def list_events(call_sid: str) -> list[CallEvent]:
    return list(CallEvent.query(call_sid, consistent_read=True))


