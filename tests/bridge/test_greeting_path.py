"""What the greeting waits for: the agent and call reads, with the model dialled meanwhile; never a DynamoDB write.

DynamoDB is moto behind the fault proxy (tests/bridge/faulty_dynamodb.py), which holds chosen
requests unanswered until the test lets them go: a write that is slow to answer, for real, over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bridge.event_recorder import CallEventRecorder
from bridge.event_writer import EventWriter
from local.scripted_model import ScriptedModelServer, load_script
from local.stack import DEMO_CONVERSATION
from tests.bridge.bridge_harness import (
    AGENT,
    TwilioLeg,
    ended_call,
    running_bridge,
    seed_call,
    until,
    vouched_facts,
)
from tests.bridge.faulty_dynamodb import FaultyDynamoDB
from tests.conftest import TwilioSigner
from voiceline import calls
from voiceline.models import Agent, Call
from voiceline.stream_token import CallFacts

# asyncio's default thread pool, where the bridge's writes run: min(32, cores + 4) threads
DEFAULT_POOL_THREADS = min(32, (os.cpu_count() or 1) + 4)
GREETING_WITHIN_S = 2.5  # under botocore's 3 s read timeout: a greeting queued behind a held write misses it


@pytest.fixture
async def scripted_model() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(load_script(DEMO_CONVERSATION), port=0) as server:
        yield server


async def test_the_greeting_plays_while_the_calls_in_progress_write_is_unanswered_and_the_call_still_ends_ended(
        dynamodb_faults: FaultyDynamoDB, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    await asyncio.to_thread(seed_call, "CA501")
    in_progress = dynamodb_faults.hold("UpdateItem", table=Call.Meta.table_name, times=1)
    async with running_bridge(scripted_model.url, monkeypatch) as url:
        dialled = datetime.now(UTC)
        async with TwilioLeg.open(url, twilio_signer, "CA501") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
            await asyncio.wait_for(leg.first_media.wait(), GREETING_WITHIN_S)  # heard, with the write unanswered
            heard = datetime.now(UTC)
            await until(lambda: in_progress.matched == 1)  # begun once the greeting's first audio was sent
            await leg.hang_up()
            await listening  # the bridge has closed the stream and is ending the call
            assert (await asyncio.to_thread(calls.get_call, "CA501")).status != "ended"  # `ended` waits for it
            in_progress.release()

    call = await ended_call("CA501")
    assert (call.status, call.end_reason, call.stream_sid) == ("ended", "caller_hung_up", "MZ1")
    assert 0 < call.setup_reads_ms < call.greeting_latency_ms  # the reads are timed, and are part of the greeting
    assert dialled <= call.stream_started_at <= heard  # when the stream started, not when the write ran


async def test_a_new_call_greets_while_every_write_thread_waits_on_dynamodb(
        dynamodb_faults: FaultyDynamoDB, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    await asyncio.to_thread(seed_call, "CA502")
    event_writes = dynamodb_faults.hold("BatchWriteItem")
    # Every thread of asyncio's default pool held by a write that DynamoDB sits on (the bridge's writer takes one;
    # the Calls' status writes take the others).
    others = [CallEventRecorder(f"CA5{n:02d}x", time.monotonic(), interval_s=0.01, writer=EventWriter())
              for n in range(DEFAULT_POOL_THREADS)]
    for recorder in others:
        recorder.record("transcript", role="caller", text="hello")
        recorder.start()
    await until(lambda: event_writes.matched >= DEFAULT_POOL_THREADS)
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA502") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await asyncio.wait_for(leg.first_media.wait(), GREETING_WITHIN_S)
        assert not event_writes.released.is_set()
        event_writes.release()
        await leg.hang_up()
        await listening
    for recorder in others:
        await recorder.close()

    call = await ended_call("CA502")
    assert call.end_reason == "caller_hung_up" and call.events_dropped == 0
    for recorder in others:
        assert [event.text for event in await asyncio.to_thread(calls.list_events, recorder.call_sid)] == ["hello"]


async def test_the_model_is_dialled_while_the_agent_read_is_unanswered(
        dynamodb_faults: FaultyDynamoDB, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    await asyncio.to_thread(seed_call, "CA503")
    agent_read = dynamodb_faults.hold("GetItem", table=Agent.Meta.table_name, times=1)
    monkeypatch.setenv("OPENAI_POOL_SIZE", "0")  # no warm connection: the call dials its own
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA503") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await until(lambda: agent_read.matched == 1 and scripted_model.open_connections == 1)
        assert not leg.first_media.is_set()  # connected, and waiting for the agent to configure the session
        agent_read.release()
        await asyncio.wait_for(leg.first_media.wait(), GREETING_WITHIN_S)
        await leg.hang_up()
        await listening

    assert (await ended_call("CA503")).end_reason == "caller_hung_up"
    [session] = scripted_model.sessions
    assert session.record.model == "gpt-realtime" and session.record.event_counts["session.update"] == 1


async def test_an_agent_on_another_model_than_the_guess_gets_a_session_on_its_own_model(
        dynamodb_faults: FaultyDynamoDB, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    await asyncio.to_thread(seed_call, "CA504")
    await asyncio.to_thread(Agent(AGENT).update, actions=[Agent.model.set("gpt-realtime-mini")])
    monkeypatch.setenv("OPENAI_POOL_SIZE", "0")  # every connection open is a call's
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA504") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await asyncio.wait_for(leg.first_media.wait(), GREETING_WITHIN_S)
        await until(lambda: scripted_model.open_connections == 1)  # the guess (the pool's model) was hung up
        await leg.hang_up()
        await listening

    assert (await ended_call("CA504")).end_reason == "caller_hung_up"
    configured = [session.record for session in scripted_model.sessions if session.record.event_counts]
    assert [record.model for record in configured] == ["gpt-realtime-mini"]


async def _requests_before_the_greeting(url: str, signer: TwilioSigner, call_sid: str, facts: CallFacts,
                                       dynamodb: FaultyDynamoDB) -> list[str]:
    """One call with the webhook's facts, hung up once greeted: the DynamoDB requests from `start` to the greeting."""
    before = len(dynamodb.requests)
    async with TwilioLeg.open(url, signer, call_sid, facts=facts) as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await asyncio.wait_for(leg.first_media.wait(), GREETING_WITHIN_S)
        requests = dynamodb.requests[before:]
        await leg.hang_up()
        await listening
    await ended_call(call_sid)
    return requests


async def test_a_call_whose_facts_vouch_for_the_agent_copy_this_task_holds_reads_nothing_before_it_greets(
        dynamodb_faults: FaultyDynamoDB, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    for call_sid in ("CA506", "CA507", "CA508"):
        await asyncio.to_thread(seed_call, call_sid)
    facts = await asyncio.to_thread(vouched_facts)
    async with running_bridge(scripted_model.url, monkeypatch) as url:
        first, second = [await _requests_before_the_greeting(url, twilio_signer, call_sid, facts, dynamodb_faults)
                         for call_sid in ("CA506", "CA507")]
        # The agent is changed behind the task's back (straight to the table: no version bump): the webhook's
        # fingerprint no longer matches the task's copy, so the task reads the agent again, and greets as it is.
        await asyncio.to_thread(seed_call, "CA508", greeting="Good morning from {business_name}")
        third = await _requests_before_the_greeting(url, twilio_signer, "CA508", await asyncio.to_thread(
            vouched_facts), dynamodb_faults)

    def reads(requests: list[str]) -> list[str]:
        return [table for table in (Agent.Meta.table_name, Call.Meta.table_name)
                if any(request.startswith(f"GetItem {table}") for request in requests)]

    assert reads(first) == [Agent.Meta.table_name]  # the task's first call: no copy of the agent yet
    assert reads(second) == [], second
    assert reads(third) == [Agent.Meta.table_name]
    greetings = [session.conversation[0].text for session in scripted_model.sessions]
    assert "Hello from Acme" in greetings[0] and "Hello from Acme" in greetings[1]
    assert "Good morning from Acme" in greetings[2]
    assert (await ended_call("CA507")).setup_reads_ms < 5
