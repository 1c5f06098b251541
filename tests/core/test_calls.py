"""The Call aggregate against DynamoDB (moto): idempotent creation, monotonic status, events, metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voiceline import calls, pricing
from voiceline.calls import CallOutcome, NewEvent
from voiceline.stats import percentile

CALL_SID = "CA" + "a" * 32


def _create(from_number: str = "+15551230001") -> None:
    calls.create_call(CALL_SID, "tenant-1", "agent-1", from_number, "+15559870002")


def test_create_writes_a_ringing_call(dynamodb: None) -> None:
    _create()
    call = calls.get_call(CALL_SID)
    assert call is not None
    assert (call.status, call.tenant_id, call.agent_id, call.direction) == ("ringing", "tenant-1", "agent-1", "inbound")
    assert call.started_at.tzinfo is not None


def test_a_retried_webhook_does_not_reset_the_call(dynamodb: None) -> None:
    _create()
    started = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    calls.mark_stream_started(CALL_SID, "MZ1", started)
    _create(from_number="+15550000000")
    call = calls.get_call(CALL_SID)
    assert call is not None
    assert (call.status, call.stream_sid, call.from_number) == ("in_progress", "MZ1", "+15551230001")


def test_twilio_status_never_moves_backwards(dynamodb: None) -> None:
    _create()
    assert calls.record_twilio_status(CALL_SID, "in-progress", None)
    assert not calls.record_twilio_status(CALL_SID, "ringing", None)  # late delivery
    assert calls.record_twilio_status(CALL_SID, "completed", 42)
    assert not calls.record_twilio_status(CALL_SID, "in-progress", None)
    assert calls.record_twilio_status(CALL_SID, "completed", 42)  # a repeat is harmless
    call = calls.get_call(CALL_SID)
    assert call is not None
    assert (call.twilio_status, call.twilio_duration_s) == ("completed", 42)


def test_status_for_an_unknown_call_is_not_recorded(dynamodb: None) -> None:
    assert not calls.record_twilio_status("CA" + "0" * 32, "completed", 5)
    assert calls.get_call("CA" + "0" * 32) is None


def test_finalise_writes_the_outcome_and_latency_percentiles(dynamodb: None) -> None:
    _create()
    ended = datetime(2025, 1, 1, 12, 5, tzinfo=UTC)
    outcome = CallOutcome(end_reason="caller_hung_up", ended_at=ended, duration_s=300.456,
                          greeting_latency_ms=812.34, turn_latencies_ms=[float(ms) for ms in range(100, 1001, 100)],
                          interruptions=2, usage={"input_tokens": 1200, "output_tokens": 340})
    calls.finalise_call(CALL_SID, outcome)
    call = calls.get_call(CALL_SID)
    assert call is not None
    assert (call.status, call.end_reason, call.ended_at) == ("ended", "caller_hung_up", ended)
    assert (call.duration_s, call.greeting_latency_ms, call.interruptions) == (300.46, 812.3, 2)
    assert (call.turn_latency_p50_ms, call.turn_latency_p95_ms) == (500, 1000)
    assert call.usage == {"input_tokens": 1200, "output_tokens": 340}


def test_finalise_stores_the_cost_priced_for_the_calls_direction_model_and_usage(dynamodb: None) -> None:
    calls.create_call(CALL_SID, "tenant-1", "agent-1", "+15559870002", "+15551230001", "outbound",
                      answered_by="human")
    usage = {"output_token_details": {"audio_tokens": 1_000}}
    calls.finalise_call(CALL_SID, CallOutcome(end_reason="agent_hung_up", ended_at=datetime.now(UTC), duration_s=61,
                                              usage=usage, model="gpt-realtime-mini", events_written=10))
    call = calls.get_call(CALL_SID)
    assert call is not None and call.cost is not None
    expected = pricing.call_cost(pricing.CallFacts(model="gpt-realtime-mini", direction="outbound", duration_s=61,
                                                   usage=usage, events_written=10, amd=True))
    assert call.cost == expected  # JSON keeps a float exactly
    assert call.cost["twilio"]["voice"] == pytest.approx(2 * pricing.Prices().twilio_outbound_per_min)


def test_finalise_without_turns_leaves_percentiles_unset(dynamodb: None) -> None:
    _create()
    calls.finalise_call(CALL_SID, CallOutcome(end_reason="no_answer", ended_at=datetime.now(UTC), duration_s=0))
    call = calls.get_call(CALL_SID)
    assert call is not None
    assert (call.turn_latency_p50_ms, call.turn_latency_p95_ms) == (None, None)


def test_events_round_trip_in_order(dynamodb: None) -> None:
    events = [
        NewEvent("transcript", at_ms=120, role="agent", text="Smile Dental, how can I help?"),
        NewEvent("transcript", at_ms=2400, role="caller", text="I'd like a cleaning."),
        NewEvent("tool_call", at_ms=3100, data={"name": "find_slots", "arguments": {"service": "cleaning"}}),
        NewEvent("interruption", at_ms=5000, data={"audio_end_ms": 640}),
    ]
    assert calls.append_events(CALL_SID, 1, events) == 5
    stored = calls.list_events(CALL_SID)
    assert [(e.seq, e.kind, e.at_ms, e.role, e.text, e.data) for e in stored] == [
        (i, e.kind, e.at_ms, e.role, e.text, e.data) for i, e in enumerate(events, start=1)]


def test_a_retried_batch_does_not_duplicate_events(dynamodb: None) -> None:
    batch = [NewEvent("transcript", at_ms=10, role="caller", text="hello"),
             NewEvent("transcript", at_ms=20, role="agent", text="hi")]
    next_seq = calls.append_events(CALL_SID, 1, batch)
    assert calls.append_events(CALL_SID, 1, batch) == next_seq
    calls.append_events(CALL_SID, next_seq, [NewEvent("error", at_ms=30, data={"code": "x"})])
    assert [e.seq for e in calls.list_events(CALL_SID)] == [1, 2, 3]


@pytest.mark.parametrize(("values", "fraction", "expected"), [
    ([], 0.5, None),
    ([7.0], 0.95, 7.0),
    ([300.0, 100.0, 200.0], 0.5, 200.0),
    ([float(v) for v in range(1, 21)], 0.95, 19.0),
    ([float(v) for v in range(1, 21)], 0.0, 1.0),
    ([float(v) for v in range(1, 21)], 1.0, 20.0),
])
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float | None) -> None:
    assert percentile(values, fraction) == expected
