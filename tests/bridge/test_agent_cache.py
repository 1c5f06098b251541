"""The bridge reads each call's agent afresh, so an admin change reaches the next call; a failed read falls back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pynamodb.exceptions import GetError

from bridge.agent_cache import AgentCache
from local.scripted_model import ScriptedModelServer, load_script
from local.stack import DEMO_CONVERSATION
from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, ended_call, running_bridge
from tests.bridge.faulty_dynamodb import faulty_dynamodb
from tests.conftest import TwilioSigner
from voiceline import agents, calls
from voiceline.models import Agent

SETTINGS: dict[str, Any] = {"name": "Ava", "business_name": "Acme", "instructions": "You are Ava at {business_name}.",
                            "greeting": "Hello from {business_name}", "voice": "marin", "max_duration_s": 60,
                            "silence_timeout_s": 60}


@pytest.fixture
async def scripted_model() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(load_script(DEMO_CONVERSATION), port=0) as server:
        yield server


async def test_a_change_is_read_by_the_next_lookup_however_long_the_ttl(dynamodb: None) -> None:
    cache = AgentCache(fallback_ttl_s=3600)
    agent = agents.create_agent(TENANT, SETTINGS)
    assert (await cache.get(agent.agent_id)).voice == "marin"

    agents.update_agent(TENANT, agent.agent_id, 1, {"voice": "cedar"})

    fresh = await cache.get(agent.agent_id)
    assert (fresh.voice, fresh.version) == ("cedar", 2)


async def test_a_deleted_agent_is_gone_for_the_next_lookup(dynamodb: None) -> None:
    cache = AgentCache(fallback_ttl_s=3600)
    agent = agents.create_agent(TENANT, SETTINGS)
    assert await cache.get(agent.agent_id) is not None

    agents.delete_agent(TENANT, agent.agent_id)

    assert await cache.get(agent.agent_id) is None


async def test_when_dynamodb_fails_the_last_copy_stands_in_within_its_ttl(dynamodb: None) -> None:
    cache, strict = AgentCache(fallback_ttl_s=3600), AgentCache(fallback_ttl_s=0)
    agent = agents.create_agent(TENANT, SETTINGS)
    await cache.get(agent.agent_id)
    await strict.get(agent.agent_id)

    Agent.delete_table()  # every read now fails for real: ResourceNotFoundException

    assert (await cache.get(agent.agent_id)).name == "Ava"
    with pytest.raises(GetError, match="ResourceNotFound"):
        await strict.get(agent.agent_id)
    with pytest.raises(GetError, match="ResourceNotFound"):
        await cache.get("agent-never-read")


async def test_a_slow_read_gives_way_to_the_last_copy(dynamodb: None) -> None:
    agent = agents.create_agent(TENANT, SETTINGS)
    reads = {"slow": False}

    def read(agent_id: str) -> Agent | None:  # DynamoDB having a bad moment
        if reads["slow"]:
            time.sleep(1)
        return agents.get_agent(agent_id, consistent_read=True)

    cache = AgentCache(fallback_ttl_s=3600, read=read, read_timeout_s=0.2)
    await cache.get(agent.agent_id)
    reads["slow"] = True
    started = time.monotonic()

    assert (await cache.get(agent.agent_id)).agent_id == agent.agent_id
    assert time.monotonic() - started < 0.8


async def test_the_next_call_after_an_admin_change_uses_the_new_settings(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    monkeypatch.setenv("AGENT_CACHE_TTL_S", "3600")  # a long fallback TTL must not delay a change
    Agent(AGENT, tenant_id=TENANT, **SETTINGS).save()
    async with running_bridge(scripted_model.url, monkeypatch) as url:
        for call_sid in ("CA301", "CA302"):
            calls.create_call(call_sid, TENANT, AGENT, "+15551230000", "+15550100")
            async with TwilioLeg.open(url, twilio_signer, call_sid) as leg:
                listening = asyncio.create_task(leg.run_until_closed(timeout_s=10))
                await asyncio.wait_for(leg.first_media.wait(), 5)  # the greeting, in this call's voice
                await leg.hang_up()
                await listening
            await ended_call(call_sid)
            if call_sid == "CA301":
                agents.update_agent(TENANT, AGENT, 1, {"voice": "cedar", "instructions": "You are Bea now."})

    first, second = (session.record.session for session in scripted_model.sessions)
    assert (first["audio"]["output"]["voice"], first["instructions"]) == ("marin", "You are Ava at Acme.")
    assert (second["audio"]["output"]["voice"], second["instructions"]) == ("cedar", "You are Bea now.")


async def _call_until_the_bridge_ends_it(url: str, signer: TwilioSigner, call_sid: str) -> TwilioLeg:
    """A caller who only listens: the bridge, not the caller, ends the call."""
    async with TwilioLeg.open(url, signer, call_sid) as leg:
        assert await leg.run_until_closed(timeout_s=20) == 1000
    return leg


async def test_when_the_agent_cannot_be_read_a_call_uses_the_copy_from_an_earlier_call(
        scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    with faulty_dynamodb(monkeypatch) as dynamodb_faults:
        await asyncio.to_thread(Agent(AGENT, tenant_id=TENANT, **SETTINGS).save)
        async with running_bridge(scripted_model.url, monkeypatch) as url:
            for call_sid in ("CA311", "CA312"):
                await asyncio.to_thread(calls.create_call, call_sid, TENANT, AGENT, "+15551230000", "+15550100")
                async with TwilioLeg.open(url, twilio_signer, call_sid) as leg:
                    listening = asyncio.create_task(leg.run_until_closed(timeout_s=15))
                    await asyncio.wait_for(leg.first_media.wait(), 10)
                    await leg.hang_up()
                    await listening
                dynamodb_faults.fail("GetItem", table=Agent.Meta.table_name)  # from now on
        second = await ended_call("CA312")
    assert second.end_reason == "caller_hung_up"
    assert scripted_model.sessions[1].record.session["instructions"] == "You are Ava at Acme."


async def test_when_the_agent_cannot_be_read_and_no_copy_exists_the_caller_hears_an_apology_and_the_call_ends(
        scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    with faulty_dynamodb(monkeypatch) as dynamodb_faults:
        await asyncio.to_thread(Agent(AGENT, tenant_id=TENANT, **SETTINGS).save)
        await asyncio.to_thread(calls.create_call, "CA313", TENANT, AGENT, "+15551230000", "+15550100")
        dynamodb_faults.fail("GetItem", table=Agent.Meta.table_name)
        async with running_bridge(scripted_model.url, monkeypatch) as url:
            leg = await _call_until_the_bridge_ends_it(url, twilio_signer, "CA313")
        call = await ended_call("CA313")
        events = await asyncio.to_thread(calls.list_events, "CA313")
    assert call.end_reason == "agent_unavailable"
    assert leg.first_media.is_set() and leg.marks_echoed > 0  # the apology was heard before the end
    [session] = scripted_model.sessions
    assert "phone system has a problem" in session.record.session["instructions"]
    assert session.record.session["tools"] == [] and session.record.responses == 1
    [error] = [event for event in events if event.kind == "error"]
    # Throttled, or still retrying its throttles when the read's timeout came: either way, no agent.
    assert error.data["source"] == "dynamodb"
    assert any(cause in error.data["message"] for cause in ("ProvisionedThroughputExceeded", "TimeoutError"))


async def test_with_neither_the_agent_nor_the_model_the_stream_is_closed_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    with faulty_dynamodb(monkeypatch) as dynamodb_faults:
        await asyncio.to_thread(calls.create_call, "CA314", TENANT, AGENT, "+15551230000", "+15550100")
        dynamodb_faults.fail("GetItem", table=Agent.Meta.table_name)
        async with running_bridge("ws://127.0.0.1:9/v1/realtime", monkeypatch) as url, \
                TwilioLeg.open(url, twilio_signer, "CA314") as leg:
            assert await leg.run_until_closed(timeout_s=15) == 1011
        assert (await ended_call("CA314")).end_reason == "agent_unavailable"
