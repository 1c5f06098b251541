"""Cost controls in the bridge, over real sockets with the scripted model counting tokens (usage.py rules).

Each control is on by default and can be turned off per agent; each test runs both ways and shows
the difference in what the model reads, or in what it is sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge import call_session
from bridge import realtime_protocol as realtime
from local.scripted_model import ScriptedModelServer, load_script
from local.stack import DEMO_CONVERSATION, ROOT
from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, ended_call, running_bridge, seed_call
from tests.conftest import TwilioSigner
from voiceline import calls
from voiceline.models import Agent, Call

CALLER_CLIP = (ROOT / "local" / "audio" / "demo_caller_1.ulaw").read_bytes()
SCRIPT = load_script(DEMO_CONVERSATION)
GREETING_AUDIO_TOKENS = len(SCRIPT.greeting.audio) // 8 * 20 // 1000  # 20 tokens a second of agent audio


def _seed(call_sid: str, variables: dict[str, str] | None = None, **agent_fields: Any) -> None:
    seed_call(call_sid, **agent_fields)
    if variables:
        Call(call_sid).update(actions=[Call.variables.set(variables)])


@pytest.fixture
async def scripted_model() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(SCRIPT, port=0) as server:
        yield server


def test_the_session_asks_for_the_agents_retention_ratio_or_leaves_openais_auto() -> None:
    agent = Agent(AGENT, tenant_id=TENANT, name="Ava", instructions="x", greeting="y")
    assert agent.retention_ratio == 0.8  # on by default
    assert realtime.session_update(agent, "x")["session"]["truncation"] == {"type": "retention_ratio",
                                                                           "retention_ratio": 0.8}
    agent.retention_ratio = None
    assert realtime.session_update(agent, "x")["session"]["truncation"] == "auto"


async def _barge_into_the_greeting(leg: TwilioLeg, model: ScriptedModelServer) -> None:
    """Silence until the greeting is arriving (its marks held: nothing heard yet), then the caller talks over it,
    then silence until the model has answered."""
    listening = asyncio.create_task(leg._listen())
    silence = base64.b64encode(b"\xff" * 160).decode()
    speech = [base64.b64encode(CALLER_CLIP[i:i + 160]).decode() for i in range(0, len(CALLER_CLIP), 160)]
    frames = 0
    while not leg.first_media.is_set() or frames < 75:  # at least 1.5 s: the greeting is fully generated
        await leg.socket.send(json.dumps({"event": "media", "media": {"payload": silence}}))
        await asyncio.sleep(0.02)
        frames += 1
    for payload in speech:
        await leg.socket.send(json.dumps({"event": "media", "media": {"payload": payload}}))
        await asyncio.sleep(0.02)
    for _ in range(500):  # up to 10 s
        if len(model.sessions[0].record.usages) >= 2:
            break
        await leg.socket.send(json.dumps({"event": "media", "media": {"payload": silence}}))
        await asyncio.sleep(0.02)
    await leg.hang_up()
    await asyncio.wait_for(listening, 10)


@pytest.mark.parametrize("truncate", [True, False])
async def test_truncating_on_barge_in_keeps_unheard_agent_audio_out_of_the_next_input(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner, truncate: bool) -> None:
    _seed(f"CA80{int(truncate)}", truncate_on_barge_in=truncate)
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, f"CA80{int(truncate)}", hold_marks=True) as leg:
        await _barge_into_the_greeting(leg, scripted_model)
    await ended_call(f"CA80{int(truncate)}")

    [session] = scripted_model.sessions
    greeting, reply = session.record.usages[:2]
    assert greeting["output_token_details"]["audio_tokens"] == GREETING_AUDIO_TOKENS  # generated in full
    caller_tokens = reply["input_token_details"]["audio_tokens"] - (0 if truncate else GREETING_AUDIO_TOKENS)
    assert session.record.truncates == ([{"item_id": session.record.truncates[0]["item_id"], "audio_end_ms": 0,
                                          "generated_ms": len(SCRIPT.greeting.audio) // 8}] if truncate else [])
    assert 0 < caller_tokens < 60  # the caller's few seconds; with no truncate, the unheard greeting too


class _StoppedClock(datetime):
    """The wall clock held at one minute, so a minute turning over mid-test cannot add a second change."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("stable", [True, False])
async def test_a_mid_call_variable_change_is_a_message_unless_the_agent_re_sends_its_instructions(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner, stable: bool) -> None:
    monkeypatch.setattr(call_session, "CLOCK_CHECK_S", 0.3)
    monkeypatch.setattr(call_session, "datetime", _StoppedClock)
    # The call started at a stale "local time", so the first clock check finds it has moved on.
    _seed(f"CA81{int(stable)}", variables={"local_time": "00:00x"}, stable_instructions=stable,
          instructions="Help {caller_number}. It is {local_time}.")
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, f"CA81{int(stable)}") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=10))
        await asyncio.sleep(1.5)  # the greeting, and a few clock checks
        await leg.hang_up()
        await listening

    [session] = scripted_model.sessions
    counts = session.record.event_counts
    instructions = session.record.session["instructions"]
    if stable:
        assert counts["session.update"] == 1 and counts["conversation.item.create"] == 1
        assert instructions.endswith("It is 00:00x.")  # the cached prefix never changed
    else:
        assert counts["session.update"] == 2 and counts["conversation.item.create"] == 0
        assert not instructions.endswith("It is 00:00x.")
    [changed] = [event for event in calls.list_events(f"CA81{int(stable)}") if event.kind == "variables_changed"]
    assert changed.data["changes"]["local_time"] != "00:00x"


async def test_silence_ends_the_call_with_a_spoken_goodbye_and_its_reason(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _seed("CA820", silence_timeout_s=1)
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA820") as leg:
        assert await leg.run_until_closed(timeout_s=20) == 1000

    call = await ended_call("CA820")
    assert call.end_reason == "silence_timeout"
    [session] = scripted_model.sessions
    assert session.record.responses == 2  # the greeting, then the goodbye
    assert session.record.event_counts["response.create"] == 2
    kinds = [event.kind for event in calls.list_events("CA820")]
    assert "silence_timeout" in kinds and "hang_up" in kinds
    goodbye_audio = sum(1 for message in leg.received if message["event"] == "media")
    assert goodbye_audio > len(SCRIPT.greeting.audio) // 800  # more audio than the greeting alone: a goodbye
