"""The bridge in-process over real sockets: limits, model failures and odd model events end or spare a call.

The bridge runs under uvicorn on 127.0.0.1, DynamoDB is moto in-process, and the model is either
the scripted model or a small hand-written Realtime peer that misbehaves on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve

from local.scripted_model import ScriptedModelServer, load_script
from local.stack import DEMO_CONVERSATION
from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, ended_call, running_bridge, seed_call, until
from tests.conftest import TwilioSigner
from voiceline import calls
from voiceline.models import Agent, Call


@pytest.fixture
async def scripted_model() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(load_script(DEMO_CONVERSATION), port=0) as server:
        yield server


@pytest.mark.parametrize(("limit", "end_reason"), [
    ({"silence_timeout_s": 1}, "silence_timeout"),
    ({"max_duration_s": 1.5}, "max_duration"),
])
async def test_the_agents_limits_end_the_call(dynamodb: None, scripted_model: ScriptedModelServer,
                                             monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner,
                                             limit: dict[str, float], end_reason: str) -> None:
    seed_call("CA100", **limit)
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA100") as leg:
        assert await leg.run_until_closed(timeout_s=15) == 1000
    call = await ended_call("CA100")
    assert call.end_reason == end_reason
    assert leg.first_media.is_set()  # the greeting played first
    assert call.greeting_latency_ms is not None
    assert 0.9 < call.duration_s < 6


async def test_openai_unreachable_ends_the_call_with_its_reason(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed_call("CA102")
    monkeypatch.setenv("OPENAI_RECONNECT_BACKOFF_S", "0.05")
    async with running_bridge("ws://127.0.0.1:9/v1/realtime", monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA102") as leg:
        await leg.run_until_closed(timeout_s=10)
    call = await ended_call("CA102")
    assert call.end_reason == "openai_unavailable"  # after the tries allowed; tests/bridge/test_realtime_faults.py
    [error] = [e for e in calls.list_events("CA102") if e.kind == "error"]
    assert "connect failed" in error.data["message"]


async def test_a_token_for_another_tenants_agent_tells_the_model_nothing(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    seed_call("CA103")
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA103", tenant_id="tenant-b") as leg:
        assert await leg.run_until_closed(timeout_s=10) == 1011
    # The model was dialled while DynamoDB answered; it is sent no event (no instructions, no audio) and is hung up.
    await until(lambda: all(session.record.closed for session in scripted_model.sessions))
    assert [session.record.event_counts for session in scripted_model.sessions] in ([], [{}])
    assert (await ended_call("CA103")).end_reason == "agent_unavailable"


ModelScript = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def realtime_peer(script: ModelScript) -> AsyncIterator[str]:
    """A hand-written Realtime server that follows `script` once the session is configured."""

    async def handle(socket: ServerConnection) -> None:
        async for raw in socket:
            if json.loads(raw)["type"] == "response.create":
                await script(socket)

    async with serve(handle, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime"


async def _odd_but_survivable(socket: ServerConnection) -> None:
    await socket.send(json.dumps({"type": "session.brand_new_event", "payload": 1}))
    await socket.send("{ not json")
    await socket.send(json.dumps(["not", "an", "object"]))
    await socket.send(json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                             "code": "something_odd", "message": "odd"}}))
    # Deltas are spliced into Twilio's JSON unescaped: one that is not base64 must never reach Twilio.
    await socket.send(json.dumps({"type": "response.output_audio.delta", "response_id": "r1", "item_id": "i1",
                                  "delta": 'AAAA"},"event":"clear'}))
    await socket.send(json.dumps({"type": "response.output_audio.delta", "response_id": "r1", "item_id": "i1",
                                  "delta": base64.b64encode(b"\x10" * 800).decode()}))


async def test_unknown_and_error_model_events_do_not_end_the_call(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed_call("CA104")
    async with realtime_peer(_odd_but_survivable) as model_url, running_bridge(model_url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA104") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=10))
        await asyncio.wait_for(leg.first_media.wait(), 5)  # audio after the odd events still got through
        await leg.socket.send(json.dumps({"event": "stop", "stop": {"callSid": "CA104"}}))
        await listening
    call = await ended_call("CA104")
    assert call.end_reason == "caller_hung_up"
    [error] = [e for e in calls.list_events("CA104") if e.kind == "error"]
    assert error.data["code"] == "something_odd"
    [ended] = [e for e in calls.list_events("CA104") if e.kind == "call_ended"]
    assert ended.data["model_events_ignored"] == 4
    [media] = [message for message in leg.received if message["event"] == "media"]
    assert media["media"]["payload"] == base64.b64encode(b"\x10" * 800).decode()


async def test_an_outbound_call_waits_for_the_callee_and_fills_in_its_variables(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    Agent(AGENT, tenant_id=TENANT, name="Ava", business_name="Acme", instructions="Calling {caller_number} about "
          "order {order_id}.", greeting="Hi, this is Acme about order {order_id}.", wait_for_callee=True,
          max_duration_s=60, silence_timeout_s=60).save()
    calls.create_call("CA110", TENANT, AGENT, "+15550100", "+15551230000", direction="outbound")
    Call("CA110").update(actions=[Call.variables.set({"order_id": "A-17"})])
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA110") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=10))
        await asyncio.sleep(1.5)  # a greeting would have arrived within a few hundred ms
        assert not leg.first_media.is_set()
        await leg.hang_up()
        await listening

    [session] = scripted_model.sessions
    instructions = session.record.session["instructions"]
    assert instructions.startswith("Calling +15551230000 about order A-17.")  # the callee, not our number
    assert "Then greet them with: Hi, this is Acme about order A-17." in instructions
    assert session.record.responses == 0
    assert (await ended_call("CA110")).end_reason == "caller_hung_up"
