"""Pre-warmed OpenAI connections, in the in-process bridge against the scripted model over real sockets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from bridge import realtime_pool
from bridge.realtime_pool import RealtimePool, close_socket
from bridge.settings import BridgeSettings
from local.scripted_model import ScriptedModelServer
from local.scripted_model.faults import FaultPlan, SessionFault
from tests.bridge.bridge_harness import AGENT, TwilioLeg, ended_call, health_url, running_bridge, until
from tests.bridge.test_realtime_faults import DEMO, first_event, seed
from tests.conftest import TwilioSigner
from voiceline.models import Agent


@pytest.fixture(autouse=True)
def pool_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_POOL_SIZE", "2")


def pool() -> RealtimePool:
    from bridge.app import app

    return app.state.bridge.realtime_pool


async def test_a_call_configures_a_connection_opened_before_it_started_and_the_pool_refills(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed("CA400")
    async with ScriptedModelServer(DEMO) as model, running_bridge(model.url, monkeypatch) as url:
        await until(lambda: len(model.sessions) == 2)
        call_started = datetime.now(UTC)
        async with TwilioLeg.open(url, twilio_signer, "CA400") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=15))
            await asyncio.wait_for(leg.first_media.wait(), 10)
            await until(lambda: len(model.sessions) == 3)  # the one taken is replaced
            await leg.hang_up()
            await listening

    [used] = [session.record for session in model.sessions if session.record.event_counts["session.update"]]
    assert datetime.fromisoformat(used.opened_at) < call_started  # no connect between `start` and session.update
    assert first_event(used) == "session.update"
    assert (await ended_call("CA400")).greeting_latency_ms is not None
    await until(lambda: all(session.record.closed for session in model.sessions))  # the pool closed with the bridge


async def test_a_pooled_connection_that_died_is_discarded_not_handed_to_a_call(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed("CA401")
    plan = FaultPlan()
    plan.fail_session(0, SessionFault("drop", after_s=0.05))
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url:
        await until(lambda: len(model.sessions) == 2 and model.sessions[0].record.closed)
        async with TwilioLeg.open(url, twilio_signer, "CA401") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=15))
            await asyncio.wait_for(leg.first_media.wait(), 10)
            await leg.hang_up()
            await listening
        assert pool().discarded >= 1

    dead, used = model.sessions[0].record, model.sessions[1].record
    assert not dead.event_counts and used.event_counts["session.update"] == 1
    assert (await ended_call("CA401")).end_reason == "caller_hung_up"


async def test_idle_connections_are_replaced_before_they_age_out(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_POOL_MAX_AGE_S", "0.3")
    async with ScriptedModelServer(DEMO) as model, running_bridge(model.url, monkeypatch):
        await until(lambda: len(model.sessions) >= 4 and model.sessions[0].record.closed
                    and model.sessions[1].record.closed)
        await until(lambda: pool().idle == 2)  # a replacement may be opening at this moment
    assert all(not session.record.event_counts for session in model.sessions)  # none was ever used


async def test_after_a_burst_takes_every_pooled_connection_they_are_all_reopened_at_once(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = FaultPlan()
    plan.handshake_delay_s = 0.3  # each connect takes this long, as to a distant API
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch):
        await until(lambda: pool().idle == 2)
        taken = [pool().take("gpt-realtime") for _ in range(2)]  # two calls at once
        await until(lambda: pool().idle == 2, what="the pool whole again")
        for connection in taken:
            assert connection is not None
            await close_socket(connection.socket)

    first_refill, second_refill = plan.connects[2:4]
    assert second_refill - first_refill < 0.15  # together: one after the other, they would be 0.3 s apart


async def test_a_connection_taken_while_another_is_reopening_is_replaced_at_once_not_after_it(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = FaultPlan()
    plan.handshake_delay_s = 0.3
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch):
        await until(lambda: pool().idle == 2)
        taken = [pool().take("gpt-realtime")]
        await until(lambda: len(plan.connects) == 3)  # its replacement is connecting
        taken.append(pool().take("gpt-realtime"))
        await until(lambda: len(plan.connects) == 4, what="the second replacement's connect")
        assert pool().idle == 0  # begun while the first is still connecting, not after it
        await until(lambda: pool().idle == 2, what="the pool whole again")
        for connection in taken:
            assert connection is not None
            await close_socket(connection.socket)

    first_refill, second_refill = plan.connects[2:4]
    assert second_refill - first_refill < 0.25  # waiting for the first to finish, it would be 0.3 s or more


async def test_after_failed_opens_the_pool_waits_before_trying_again_then_fills(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime_pool, "REFILL_BACKOFF_S", (0.2, 1.0))
    plan = FaultPlan()
    plan.refuse(2)  # both of the first opens: OpenAI answering 503
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch):
        await until(lambda: pool().idle == 2, what="the pool filled after the failures")

    first_failure, second_failure, retry = plan.connects[:3]
    assert retry - max(first_failure, second_failure) >= 0.19  # a backoff, not a retry loop against a failing API
    assert len(plan.connects) == 4


async def test_a_call_that_finds_the_pool_empty_is_counted_as_a_miss_and_health_shows_it(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = FaultPlan()
    plan.handshake_delay_s = 0.3  # the refill cannot finish before the third call of the burst
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url:
        await until(lambda: pool().idle == 2)
        taken = [pool().take("gpt-realtime") for _ in range(3)]  # three calls at once against a pool of two
        assert pool().take("gpt-realtime-mini") is None  # a model the pool does not keep: no miss
        async with httpx.AsyncClient(timeout=5) as http:
            health = (await http.get(health_url(url))).json()
        for connection in taken[:2]:
            assert connection is not None
            await close_socket(connection.socket)

    assert taken[2] is None
    assert health["realtime_pool"]["missed"] == 1


def test_with_no_pool_a_call_connecting_itself_is_no_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_POOL_SIZE", "0")
    no_pool = RealtimePool(BridgeSettings.from_env())

    assert no_pool.take("gpt-realtime") is None and no_pool.missed == 0


async def test_each_pooled_model_is_kept_warm_and_an_agent_on_the_second_gets_a_connection_of_its_own_model(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    monkeypatch.setenv("OPENAI_POOL_MODELS", "gpt-realtime, gpt-realtime-mini")
    monkeypatch.setenv("OPENAI_POOL_SIZE", "1")
    seed("CA402")
    Agent(AGENT).update(actions=[Agent.model.set("gpt-realtime-mini")])
    async with ScriptedModelServer(DEMO) as model, running_bridge(model.url, monkeypatch) as url:
        await until(lambda: len(model.sessions) == 2)
        assert sorted(session.record.model for session in model.sessions) == ["gpt-realtime", "gpt-realtime-mini"]
        call_started = datetime.now(UTC)
        async with TwilioLeg.open(url, twilio_signer, "CA402") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=15))
            await asyncio.wait_for(leg.first_media.wait(), 10)
            await leg.hang_up()
            await listening

    [used] = [session.record for session in model.sessions if session.record.event_counts]
    assert used.model == "gpt-realtime-mini" and datetime.fromisoformat(used.opened_at) < call_started
    assert (await ended_call("CA402")).end_reason == "caller_hung_up"


def test_a_pool_model_no_agent_could_choose_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_POOL_MODELS", "gpt-realtime,gpt-4o")
    with pytest.raises(ValueError, match="OPENAI_POOL_MODELS must name one or more of gpt-realtime"):
        BridgeSettings.from_env()
