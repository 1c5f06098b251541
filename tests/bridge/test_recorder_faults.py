"""Recording while DynamoDB throttles: nothing is lost or duplicated, memory stays bounded, the Call is finalised.

DynamoDB is moto's server behind a proxy that answers with DynamoDB's own throttling errors
(tests/bridge/faulty_dynamodb.py); the recorder and the bridge reach it over HTTP like the real thing.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.backoff import Backoff, retry_until
from bridge.event_recorder import CallEventRecorder
from bridge.event_writer import EventWriter
from local.scripted_model import ScriptedModelServer, load_script
from local.stack import DEMO_CONVERSATION
from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, ended_call, running_bridge
from tests.bridge.faulty_dynamodb import THROTTLING, FaultyDynamoDB
from tests.conftest import TwilioSigner
from voiceline import calls
from voiceline.models import Agent, Call, CallEvent


def _events(call_sid: str) -> list[CallEvent]:
    return calls.list_events(call_sid)


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for delay, ceiling in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(delay, 6) for delay in delays[4:]}) > 1  # jittered, not in step
    backoff.reset()
    assert backoff.next_delay() <= 0.1


async def test_retry_until_stops_at_its_deadline() -> None:
    tries = 0

    async def never() -> bool:
        nonlocal tries
        tries += 1
        return False

    started = time.monotonic()
    assert await retry_until(started + 0.5, never, Backoff(0.05, 0.1)) is False
    assert 0.3 < time.monotonic() - started < 0.6 and 3 <= tries <= 12


async def test_throttled_writes_are_retried_and_every_event_arrives_once_in_order(
        dynamodb_faults: FaultyDynamoDB) -> None:
    rule = dynamodb_faults.fail("BatchWriteItem", times=6)  # more than botocore's own retries
    recorder = CallEventRecorder("CA401", time.monotonic(), interval_s=0.02, writer=EventWriter())
    recorder.start()
    for n in range(60):
        recorder.record("transcript", role="caller", text=f"line {n}")
        await asyncio.sleep(0.005)
    await recorder.close()
    assert rule.matched == 6
    events = await asyncio.to_thread(_events, "CA401")
    assert [(e.seq, e.text) for e in events] == [(n + 1, f"line {n}") for n in range(60)]
    assert recorder.dropped == 0


async def test_a_full_buffer_keeps_the_oldest_events_and_the_call_ended_and_counts_the_rest(
        dynamodb_faults: FaultyDynamoDB) -> None:
    dynamodb_faults.fail("BatchWriteItem", error_type=THROTTLING)
    recorder = CallEventRecorder("CA402", time.monotonic(), interval_s=0.02, writer=EventWriter(), max_buffered=5)
    recorder.start()
    for n in range(12):
        recorder.record("transcript", text=str(n))
    recorder.record("call_ended", data={"reason": "caller_hung_up"})
    await asyncio.sleep(0.1)  # some writes fail meanwhile
    dynamodb_faults.heal()
    await recorder.close()
    events = await asyncio.to_thread(_events, "CA402")
    assert [e.text for e in events[:5]] == ["0", "1", "2", "3", "4"]
    assert events[-1].kind == "call_ended" and len(events) == 6
    assert recorder.dropped == 7


async def test_the_final_flush_gives_up_at_its_deadline_and_counts_what_was_lost(
        dynamodb_faults: FaultyDynamoDB) -> None:
    dynamodb_faults.fail("BatchWriteItem")
    recorder = CallEventRecorder("CA403", time.monotonic(), interval_s=60, writer=EventWriter())
    recorder.record("error", data={"message": "x"})
    recorder.record("call_ended")
    started = time.monotonic()
    await recorder.close(deadline_s=1.0)
    assert time.monotonic() - started < 2.5  # an attempt in flight at the deadline is not waited for
    assert recorder.dropped == 2


@pytest.fixture
async def scripted_model() -> ScriptedModelServer:
    async with ScriptedModelServer(load_script(DEMO_CONVERSATION), port=0) as server:
        yield server


async def test_a_call_while_dynamodb_throttles_relays_audio_records_every_event_once_and_is_finalised(
        dynamodb_faults: FaultyDynamoDB, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    def seed() -> None:
        Agent(AGENT, tenant_id=TENANT, name="Ava", business_name="Acme", instructions="Help", greeting="Hello",
              max_duration_s=60, silence_timeout_s=60).save()
        calls.create_call("CA404", TENANT, AGENT, "+15551230000", "+15550100")

    await asyncio.to_thread(seed)
    event_writes = dynamodb_faults.fail("BatchWriteItem", times=8)
    finalise = dynamodb_faults.fail("UpdateItem", table=Call.Meta.table_name, times=5)
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA404") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await asyncio.wait_for(leg.first_media.wait(), 10)  # the greeting plays while every write fails
        await leg.socket.send('{"event": "dtmf", "dtmf": {"digit": "5"}}')
        await asyncio.sleep(0.3)
        await leg.hang_up()
        await listening

    call = await ended_call("CA404")
    assert call.end_reason == "caller_hung_up" and call.events_dropped == 0
    assert event_writes.matched == 8 and finalise.matched == 5
    events = await asyncio.to_thread(_events, "CA404")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = [e.kind for e in events]
    assert kinds.count("dtmf") == 1 and kinds.count("call_ended") == 1 and kinds[-1] == "call_ended"
