"""Cost controls in the bridge, over real sockets with the scripted model counting tokens (usage.py rules).

Each control is on by default and can be turned off per agent; each test runs both ways and shows
the difference in what the model reads, or in what it is sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge import call_session
from bridge import realtime_protocol as realtime
from bridge.playback import MARK_EVERY_MS, MULAW_BYTES_PER_MS
from local.scripted_model import ScriptedModelServer, load_script
from local.scripted_model.responses import CHUNK_MS
from local.stack import DEMO_CONVERSATION, ROOT
from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, ended_call, running_bridge, seed_call, until
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


SILENCE = base64.b64encode(b"\xff" * 160).decode()
SPEECH = [base64.b64encode(CALLER_CLIP[i:i + 160]).decode() for i in range(0, len(CALLER_CLIP), 160)]


async def _silence_until(leg: TwilioLeg, done: Callable[[], bool], timeout_s: float = 10) -> None:
    """Silence every 20 ms, as a phone line sends, until `done()`."""
    for _ in range(int(timeout_s / 0.02)):
        if done():
            return
        await leg.socket.send(json.dumps({"event": "media", "media": {"payload": SILENCE}}))
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout_s}s")


async def _speak_once(leg: TwilioLeg, model: ScriptedModelServer,
                      before_speaking: Callable[[], Awaitable[None]] | None = None) -> None:
    """Silence until the greeting is fully generated, then the caller's line, then silence until the model has
    answered it; then hang up. With marks held, none of the greeting has been heard when the caller speaks."""
    listening = asyncio.create_task(leg._listen())
    await _silence_until(leg, lambda: bool(model.sessions and model.sessions[0].record.usages))
    if before_speaking is not None:
        await before_speaking()
    for payload in SPEECH:
        await leg.socket.send(json.dumps({"event": "media", "media": {"payload": payload}}))
        await asyncio.sleep(0.02)
    await _silence_until(leg, lambda: len(model.sessions[0].record.usages) >= 2)
    await leg.hang_up()
    await asyncio.wait_for(listening, 10)


@pytest.mark.parametrize("truncate", [True, False])
async def test_truncating_on_barge_in_keeps_unheard_agent_audio_out_of_the_next_input(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner, truncate: bool) -> None:
    _seed(f"CA80{int(truncate)}", truncate_on_barge_in=truncate, own_speech_as_text=False)
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, f"CA80{int(truncate)}", hold_marks=True) as leg:
        await _speak_once(leg, scripted_model)
    await ended_call(f"CA80{int(truncate)}")

    [session] = scripted_model.sessions
    greeting, reply = session.record.usages[:2]
    assert greeting["output_token_details"]["audio_tokens"] == GREETING_AUDIO_TOKENS  # generated in full
    caller_tokens = reply["input_token_details"]["audio_tokens"] - (0 if truncate else GREETING_AUDIO_TOKENS)
    assert session.record.truncates == ([{"item_id": session.record.truncates[0]["item_id"], "audio_end_ms": 0,
                                          "generated_ms": len(SCRIPT.greeting.audio) // 8}] if truncate else [])
    assert 0 < caller_tokens < 60  # the caller's few seconds; with no truncate, the unheard greeting too


async def test_agent_audio_is_marked_every_mark_interval_and_at_its_end_and_a_barge_in_cuts_at_the_last_echo(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _seed("CA802", own_speech_as_text=False)
    deltas = math.ceil(len(SCRIPT.greeting.audio) / (CHUNK_MS * MULAW_BYTES_PER_MS))
    deltas_per_mark = MARK_EVERY_MS // CHUNK_MS
    sent: list[str] = []

    async def hear_the_first_mark_only() -> None:
        await until(lambda: leg.marks_held == math.ceil(deltas / deltas_per_mark), what="the greeting's marks")
        sent.extend(message["event"] for message in leg.received)
        await leg.release_marks(1)

    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA802", hold_marks=True) as leg:
        await _speak_once(leg, scripted_model, hear_the_first_mark_only)
    await ended_call("CA802")

    # A mark after every second 100 ms delta, and one after the last: half the messages of a mark per delta.
    expected = [event for delta in range(1, deltas + 1)
                for event in ["media", *(["mark"] if delta % deltas_per_mark == 0 or delta == deltas else [])]]
    assert sent == expected
    [truncate] = scripted_model.sessions[0].record.truncates
    assert truncate["audio_end_ms"] == MARK_EVERY_MS  # heard: up to the one mark echoed


def _spoken(session: Any) -> list[Any]:
    """The caller's and the agent's items, without the system messages that steer responses."""
    return [item for item in session.conversation if item.role != "system"]


@pytest.mark.parametrize("as_text", [True, False])
async def test_once_heard_the_agents_speech_stays_in_the_conversation_as_its_words_not_its_audio(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner, as_text: bool) -> None:
    _seed(f"CA83{int(as_text)}", own_speech_as_text=as_text)
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, f"CA83{int(as_text)}") as leg:  # marks echoed: all heard
        await _speak_once(leg, scripted_model)
    await ended_call(f"CA83{int(as_text)}")

    [session] = scripted_model.sessions
    greeting_item, caller_item = _spoken(session)[:2]
    greeting, reply = session.record.usages[:2]
    # The greeting was asked for by a system message, not by instructions of its own: the reply reads all
    # the greeting's input (the session prompt and that message) from the cache.
    assert reply["input_token_details"]["cached_tokens"] == greeting["input_tokens"] > 0
    caller_tokens = caller_item.audio_ms // 100
    assert 0 < caller_tokens < 60
    if as_text:
        # The greeting's audio item went first (the reply's may have followed before the hang-up).
        assert session.record.deletes and session.record.deletes[0] not in {item.id for item in session.conversation}
        assert (greeting_item.role, greeting_item.text, greeting_item.audio_ms) == \
            ("assistant", SCRIPT.greeting.text, 0)
        # The reply re-read the caller's audio and the greeting's 16 text tokens, not its 75 audio tokens.
        assert reply["input_token_details"]["audio_tokens"] == caller_tokens
    else:
        assert session.record.deletes == []
        assert greeting_item.audio_ms == len(SCRIPT.greeting.audio) // 8
        assert reply["input_token_details"]["audio_tokens"] == caller_tokens + GREETING_AUDIO_TOKENS


async def test_a_reply_cut_off_midway_stays_as_the_words_heard_before_the_cut(
        dynamodb: None, scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _seed("CA840")
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA840", hold_marks=True) as leg:
        async def play_half() -> None:
            # Sent on the caller's socket before its speech: the bridge has them before the model hears a word.
            await leg.release_marks(leg.marks_held // 2)

        await _speak_once(leg, scripted_model, before_speaking=play_half)
    await ended_call("CA840")

    [session] = scripted_model.sessions
    [truncate] = session.record.truncates
    greeting_ms = len(SCRIPT.greeting.audio) // 8
    assert 0 < truncate["audio_end_ms"] < greeting_ms
    greeting_item = _spoken(session)[0]
    words = SCRIPT.greeting.text.split()
    heard = words[:len(words) * truncate["audio_end_ms"] // greeting_ms]
    assert 0 < len(heard) < len(words)
    assert (greeting_item.role, greeting_item.text, greeting_item.audio_ms) == ("assistant", " ".join(heard), 0)
    assert session.record.deletes == [truncate["item_id"]]


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
          own_speech_as_text=False, instructions="Help {caller_number}. It is {local_time}.")
    async with running_bridge(scripted_model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, f"CA81{int(stable)}") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=10))
        await asyncio.sleep(1.5)  # the greeting, and a few clock checks
        await leg.hang_up()
        await listening

    [session] = scripted_model.sessions
    counts = session.record.event_counts
    instructions = session.record.session["instructions"]
    updates = [item.text for item in session.conversation if item.role == "system" and item.text.startswith("Update")]
    if stable:
        assert counts["session.update"] == 1 and len(updates) == 1
        assert instructions.endswith("It is 00:00x.")  # the cached prefix never changed
    else:
        assert counts["session.update"] == 2 and updates == []
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
