"""OpenAI faults in a live call, in-process over real sockets: reconnect and restore, fatal errors, recycling.

The bridge runs under uvicorn, the scripted model misbehaves as its FaultPlan says, DynamoDB is
moto, and hang-ups and transfers go to the Twilio REST stand-in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bridge.call_session import FALLBACK_CLIPS
from local.scripted_model import ScriptedModelServer, load_script
from local.scripted_model.faults import FaultPlan, SessionFault
from local.stack import DEMO_CONVERSATION
from tests.bridge.bridge_harness import (
    CALLER,
    SILENCE_FRAME,
    TwilioLeg,
    ended_call,
    known_to_twilio,
    running_bridge,
    seed_call,
    until,
)
from tests.conftest import TwilioSigner
from voiceline import calls

DEMO = load_script(DEMO_CONVERSATION)  # the agent below has no tools, so its turns are plain lines
TRANSFER_NUMBER = "+15557654321"
FRAME_BYTES = 160


class CallerLeg(TwilioLeg):
    """A Twilio leg whose caller can speak: a clip's frames go out instead of silence, four times real time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._speech: deque[str] = deque()

    def say(self, audio: bytes) -> None:
        self._speech.extend(base64.b64encode(audio[start:start + FRAME_BYTES]).decode()
                            for start in range(0, len(audio), FRAME_BYTES))

    def heard(self) -> bytes:
        """Every agent byte the bridge sent to the phone so far."""
        return b"".join(base64.b64decode(message["media"]["payload"])
                        for message in self.received if message["event"] == "media")

    async def _send_silence(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                speaking = bool(self._speech)
                payload = self._speech.popleft() if speaking else SILENCE_FRAME
                await self.socket.send(f'{{"event":"media","media":{{"payload":"{payload}"}}}}')
                await asyncio.sleep(0.005 if speaking else 0.02)  # the model's VAD counts audio, not wall time


def seed(call_sid: str, transfer_number: str | None = None) -> None:
    seed_call(call_sid, max_duration_s=120, transfer_number=transfer_number)


def agent_lines(call_sid: str) -> list[str]:
    return [event.text for event in calls.list_events(call_sid) if event.kind == "transcript" and event.role == "agent"]


def first_event(record: Any) -> str:
    """The type of the first client event a scripted-model session received."""
    return next(iter(record.event_counts))


def events_of(call_sid: str, kind: str) -> list[Any]:
    return [event for event in calls.list_events(call_sid) if event.kind == kind]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_RECONNECT_ATTEMPTS", "3")
    monkeypatch.setenv("OPENAI_RECONNECT_BACKOFF_S", "0.05")


@pytest.mark.parametrize("fault", ["drop", "server_error"])
async def test_a_lost_session_is_restored_and_the_call_goes_on_without_a_second_greeting(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner, fault: str) -> None:
    seed("CA300")
    plan = FaultPlan()
    plan.fail_session(0, SessionFault(fault, after_event="response.done", count=2))  # after the first answer
    greeting, first, second = DEMO.greeting.audio, DEMO.turns[0].agent.audio, DEMO.turns[1].agent.audio
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url, \
            CallerLeg.open(url, twilio_signer, "CA300") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=40))
        await until(lambda: len(leg.heard()) >= len(greeting))
        leg.say(DEMO.turns[0].caller.audio)
        await until(lambda: len(model.sessions) == 2 and model.sessions[1].record.event_counts[
            "conversation.item.create"] == 5)
        assert leg.heard() == greeting + first
        leg.say(DEMO.turns[1].caller.audio)
        await until(lambda: len(agent_lines("CA300")) == 3)  # heard, and its transcript is in
        await leg.hang_up()
        await listening

    lost, restored = (session.record for session in model.sessions)
    assert first_event(restored) == "session.update"
    assert restored.session["instructions"] == lost.session["instructions"] == f"Help {CALLER}"
    assert restored.responses == 1  # the answer to the next question, and no greeting
    assert leg.heard() == greeting + first + second
    call = await ended_call("CA300")
    assert call.end_reason == "caller_hung_up"
    assert agent_lines("CA300") == [DEMO.greeting.text, DEMO.turns[0].agent.text, DEMO.turns[1].agent.text]
    [reconnected] = events_of("CA300", "model_reconnected")
    # The note, the system message that asked for the greeting, the greeting, the question and its answer.
    assert reconnected.data["items_replayed"] == 5
    if fault == "server_error":
        assert [error.data["code"] for error in events_of("CA300", "error")] == ["server_error"]


async def test_a_drop_mid_answer_clears_the_unheard_audio_and_no_greeting_follows(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed("CA301")
    plan = FaultPlan()
    plan.fail_session(0, SessionFault("drop", after_event="response.output_audio.delta", count=2))
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url, \
            CallerLeg.open(url, twilio_signer, "CA301", hold_marks=True) as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await until(lambda: any(message["event"] == "clear" for message in leg.received))
        await until(lambda: len(model.sessions) == 2 and model.sessions[1].record.event_counts["session.update"] == 1)
        await leg.release_marks()
        heard_before = len(leg.heard())
        leg.say(DEMO.turns[0].caller.audio)
        await until(lambda: len(agent_lines("CA301")) == 1)
        await leg.hang_up()
        await listening

    assert model.sessions[1].record.responses == 1  # the answer; the cut greeting was not started again
    assert leg.heard()[heard_before:] == DEMO.turns[0].agent.audio
    await ended_call("CA301")
    assert agent_lines("CA301") == [DEMO.turns[0].agent.text]


def fatal_error_event(plan: FaultPlan) -> None:
    plan.fail_session(0, SessionFault("invalid_api_key", after_event="response.done", count=1))


def refused_with(status: HTTPStatus) -> Callable[[FaultPlan], None]:
    def arrange(plan: FaultPlan) -> None:
        plan.fail_session(0, SessionFault("drop", after_event="response.done", count=1))
        plan.refuse(10, status, first=1)
    return arrange


@pytest.mark.parametrize(("arrange", "transfer_number", "end_reason", "handshakes"), [
    (fatal_error_event, TRANSFER_NUMBER, "openai_fatal_error", 1),
    (fatal_error_event, None, "openai_fatal_error", 1),
    (refused_with(HTTPStatus.UNAUTHORIZED), TRANSFER_NUMBER, "openai_fatal_error", 2),
    (refused_with(HTTPStatus.SERVICE_UNAVAILABLE), TRANSFER_NUMBER, "openai_unavailable", 1 + 3),
    (refused_with(HTTPStatus.SERVICE_UNAVAILABLE), None, "openai_unavailable", 1 + 3),
], ids=["fatal-event-transfer", "fatal-event-hang-up", "401-on-reconnect", "503-until-out-of-tries-transfer",
        "503-until-out-of-tries-hang-up"])
async def test_when_the_model_is_gone_the_caller_hears_a_recorded_line_then_a_colleague_or_goodbye(
        dynamodb: None, twilio_api: str, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner,
        arrange: Callable[[FaultPlan], None], transfer_number: str | None, end_reason: str, handshakes: int) -> None:
    seed("CA302", transfer_number)
    plan = FaultPlan()
    arrange(plan)
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url, \
            known_to_twilio(twilio_api, "CA302") as updates, CallerLeg.open(url, twilio_signer, "CA302") as leg:
        assert await leg.run_until_closed(timeout_s=30) == 1000

    assert len(plan.connects) == handshakes  # fatal: never retried; otherwise as many tries as allowed
    action = "transfer" if transfer_number else "hang_up"
    assert leg.heard() == DEMO.greeting.audio + FALLBACK_CLIPS[action]
    assert updates.end is not None
    assert updates.end.ended_by == ("transferred" if transfer_number else "agent_hung_up")
    assert updates.end.transferred_to == transfer_number
    call = await ended_call("CA302")
    assert call.end_reason == end_reason
    [handover] = events_of("CA302", action)
    assert (handover.data["reason"], handover.data["outcome"]) == (end_reason, "updated")
    assert events_of("CA302", "error")[-1].data["end_reason"] == end_reason


async def test_the_session_is_renewed_before_its_limit_while_the_caller_keeps_talking(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed("CA303")
    monkeypatch.setenv("OPENAI_SESSION_RECYCLE_S", "1")
    async with ScriptedModelServer(DEMO) as model, running_bridge(model.url, monkeypatch) as url, \
            CallerLeg.open(url, twilio_signer, "CA303") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await until(lambda: len(leg.heard()) >= len(DEMO.greeting.audio))
        await until(lambda: len(model.sessions) >= 2 and model.sessions[0].record.closed)
        leg.say(DEMO.turns[0].caller.audio)
        await until(lambda: len(agent_lines("CA303")) == 2)
        await leg.hang_up()
        await listening

    assert leg.heard() == DEMO.greeting.audio + DEMO.turns[0].agent.audio
    assert sum(session.record.responses for session in model.sessions) == 2  # greeting and answer, once each
    assert all(first_event(session.record) == "session.update" for session in model.sessions)
    assert not any(message["event"] == "clear" for message in leg.received)  # nothing was cut off
    await ended_call("CA303")
    assert agent_lines("CA303") == [DEMO.greeting.text, DEMO.turns[0].agent.text]
    renewals = events_of("CA303", "model_session_renewed")
    assert len(renewals) == len(model.sessions) - 1 and all(r.data["age_s"] >= 1 for r in renewals)
    assert not events_of("CA303", "model_reconnected")


async def test_a_call_that_ends_while_its_session_renewal_connects_leaves_no_model_connection_open(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed("CA304")
    monkeypatch.setenv("OPENAI_SESSION_RECYCLE_S", "1")
    plan = FaultPlan()
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url:
        async with CallerLeg.open(url, twilio_signer, "CA304") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
            await until(lambda: len(leg.heard()) >= len(DEMO.greeting.audio))
            plan.handshake_delay_s = 8.0  # the renewal's handshake hangs, as on a slow network
            await until(lambda: len(plan.connects) == 2)  # the renewal's handshake has arrived, and is held
            await leg.hang_up()
            await listening
        call = await ended_call("CA304")
        await until(lambda: model.open_connections == 0)  # neither the call's session nor the half-open renewal

    assert call.end_reason == "caller_hung_up"
    assert call.duration_s < 5  # the call did not wait out the renewal's 8 s handshake
    # The aborted handshake may still reach the server's session handler; it is closed like the call's own.
    assert all(session.record.closed for session in model.sessions)
    assert not events_of("CA304", "model_session_renewed")


async def test_a_call_that_ends_while_its_renewal_replays_into_a_stalled_session_closes_both_sessions(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    # Long instructions: the renewal's session.update alone is more than the narrowed sockets hold, so the
    # replay's send blocks while the new session reads nothing.
    seed_call("CA306", max_duration_s=120, instructions="Help. " + "Be kind. " * 38_000)
    monkeypatch.setenv("OPENAI_SESSION_RECYCLE_S", "1")
    plan = FaultPlan()
    plan.narrow_sockets = True
    plan.fail_session(1, SessionFault("stall", after_event="session.created", stall_s=8.0))
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url:
        async with CallerLeg.open(url, twilio_signer, "CA306") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
            await until(lambda: len(leg.heard()) >= len(DEMO.greeting.audio))
            await until(lambda: len(model.sessions) == 2)  # the renewal's session, which has stopped reading
            await asyncio.sleep(0.5)  # ample time for an unblocked replay of this size to finish on loopback
            assert not model.sessions[0].record.closed  # the replay has not finished: the old session is kept
            await leg.hang_up()
            await listening
        call = await ended_call("CA306")
        await until(lambda: model.open_connections == 0)  # the stalled one too, once it reads the close again

    assert call.end_reason == "caller_hung_up"
    assert call.duration_s < 5  # the call did not wait for the stalled replay
    assert all(session.record.closed for session in model.sessions)
    assert model.sessions[1].record.event_counts["session.update"] <= 1  # it never got the whole replay
    assert not events_of("CA306", "model_session_renewed")


async def test_a_response_the_drop_killed_before_any_of_it_was_heard_is_asked_for_again(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    seed("CA305")
    plan = FaultPlan()
    plan.fail_session(0, SessionFault("drop", after_event="response.created", count=1))  # the greeting, unheard
    async with ScriptedModelServer(DEMO, faults=plan) as model, running_bridge(model.url, monkeypatch) as url, \
            CallerLeg.open(url, twilio_signer, "CA305") as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
        await until(lambda: len(leg.heard()) >= len(DEMO.greeting.audio))
        await until(lambda: len(agent_lines("CA305")) == 1)  # heard, and its transcript is in
        await leg.hang_up()
        await listening

    lost, restored = (session.record for session in model.sessions)
    assert (lost.responses, lost.event_counts["response.create"]) == (1, 1)
    assert (restored.responses, restored.event_counts["response.create"]) == (1, 1)  # the same request again
    assert leg.heard() == DEMO.greeting.audio  # whole, once
    [reconnected] = events_of("CA305", "model_reconnected")
    assert reconnected.data["cause"] == "socket closed (no close frame)"
