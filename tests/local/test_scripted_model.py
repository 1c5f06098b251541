"""The scripted realtime model over real sockets: GA protocol strictness, VAD, barge-in, truncation, /sessions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from local.scripted_model import ScriptedModelServer, load_script

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "local" / "conversations" / "demo.json"
SCRIPT = load_script(DEMO)
SILENCE = b"\xff" * 8000  # one second of μ-law silence
FRAME = 160  # 20 ms, as Twilio sends it
TIMEOUT_S = 5
PCMU_WITH_TRANSCRIPTION = {
    "type": "realtime",
    "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "transcription": {"model": "gpt-4o-transcribe"}},
        "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
    },
}


class ModelClient:
    """A test's side of one session: send events, and read server events up to the one awaited."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.created: dict[str, Any] = {}

    @classmethod
    @asynccontextmanager
    async def open(cls, model: ScriptedModelServer | str) -> AsyncIterator[ModelClient]:
        """A new session, past its `session.created`, on a server in this process or at a URL."""
        url = model if isinstance(model, str) else model.url
        async with connect(f"{url}?model=gpt-realtime",
                           additional_headers={"Authorization": "Bearer sk-local"}) as websocket:
            session_client = cls(websocket)
            session_client.created = await session_client.next_event()
            yield session_client

    async def send(self, event: dict[str, Any]) -> None:
        await self.websocket.send(json.dumps(event))

    async def next_event(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.websocket.recv(), TIMEOUT_S))

    async def until(self, event_type: str) -> list[dict[str, Any]]:
        """Every event up to and including the first of `event_type`."""
        seen = []
        while True:
            seen.append(await self.next_event())
            if seen[-1]["type"] == event_type:
                return seen

    async def append(self, audio: bytes) -> None:
        for offset in range(0, len(audio), FRAME):
            await self.send({"type": "input_audio_buffer.append",
                             "audio": base64.b64encode(audio[offset:offset + FRAME]).decode()})

    async def update_session(self, session: dict[str, Any]) -> dict[str, Any]:
        await self.send({"type": "session.update", "session": session})
        return await self.next_event()


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == event_type]


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in of_type(events, "response.output_audio.delta"))


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(SCRIPT, "127.0.0.1", 0) as server:
        yield server


@pytest.fixture
async def client(model: ScriptedModelServer) -> AsyncIterator[ModelClient]:
    async with ModelClient.open(model) as session_client:
        yield session_client


async def sessions_report(model: ScriptedModelServer) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        response = await http.get(f"http://127.0.0.1:{model.port}/sessions")
    response.raise_for_status()
    return response.json()


async def test_session_created_on_connect_in_ga_shape(model: ScriptedModelServer, client: ModelClient) -> None:
    created = client.created
    assert created["type"] == "session.created"
    assert created["event_id"].startswith("event_")
    assert created["session"]["type"] == "realtime"
    assert created["session"]["object"] == "realtime.session"
    assert created["session"]["model"] == "gpt-realtime"
    assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    [report] = await sessions_report(model)
    assert report["id"] == created["session"]["id"]
    assert report["closed"] is False


@pytest.mark.parametrize("beta_field, value", [
    ("temperature", 0.8),
    ("input_audio_format", "g711_ulaw"),
    ("output_audio_format", "g711_ulaw"),
    ("modalities", ["audio", "text"]),
    ("voice", "alloy"),
    ("turn_detection", {"type": "server_vad"}),
    ("input_audio_transcription", {"model": "whisper-1"}),
])
async def test_beta_session_field_is_unknown_and_not_applied(
        model: ScriptedModelServer, client: ModelClient, beta_field: str, value: Any) -> None:
    reply = await client.update_session({**PCMU_WITH_TRANSCRIPTION, beta_field: value})
    assert reply["type"] == "error"
    assert reply["error"]["type"] == "invalid_request_error"
    assert reply["error"]["code"] == "unknown_parameter"
    assert reply["error"]["param"] == f"session.{beta_field}"
    assert reply["error"]["message"] == f"Unknown parameter: 'session.{beta_field}'."
    [report] = await sessions_report(model)
    assert beta_field not in report["session"]
    assert report["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert report["errors_sent"] == [{"code": "unknown_parameter", "message": reply["error"]["message"]}]


async def test_nested_unknown_field_is_named_by_its_path(client: ModelClient) -> None:
    reply = await client.update_session({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"},
                                                                                 "sample_rate": 8000}}})
    assert reply["error"]["code"] == "unknown_parameter"
    assert reply["error"]["param"] == "session.audio.input.sample_rate"


async def test_session_update_without_type_is_rejected(client: ModelClient) -> None:
    reply = await client.update_session({"instructions": "Be brief."})
    assert reply["type"] == "error"
    assert reply["error"]["code"] == "missing_required_parameter"
    assert reply["error"]["param"] == "session.type"


async def test_speed_out_of_range_is_rejected(client: ModelClient) -> None:
    reply = await client.update_session({"type": "realtime", "audio": {"output": {"speed": 2.0}}})
    assert reply["error"]["code"] == "decimal_above_max_value"
    assert reply["error"]["param"] == "session.audio.output.speed"


async def test_ga_session_update_is_merged_and_echoed_in_full(client: ModelClient) -> None:
    updated = await client.update_session({
        **PCMU_WITH_TRANSCRIPTION,
        "instructions": "You are Ava.",
        "output_modalities": ["audio"],
        "tools": [{"type": "function", "name": "end_call", "description": "Hang up.",
                   "parameters": {"type": "object", "properties": {}}}],
    })
    assert updated["type"] == "session.updated"
    session = updated["session"]
    assert session["instructions"] == "You are Ava."
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0}
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500

    again = await client.update_session({"type": "realtime", "audio": {"output": {"speed": 1.2}}})
    assert again["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert again["session"]["audio"]["output"]["speed"] == 1.2


async def test_greeting_streams_the_clip_ahead_of_real_time_then_done_with_usage(client: ModelClient) -> None:
    await client.update_session(PCMU_WITH_TRANSCRIPTION)
    await client.send({"type": "response.create", "response": {"instructions": "Greet the caller now."}})
    events = await client.until("response.done")

    assert [e["type"] for e in events[:4]] == ["response.created", "response.output_item.added",
                                                "conversation.item.added", "response.content_part.added"]
    assert [e["type"] for e in events[-6:]] == [
        "response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
        "response.output_item.done", "conversation.item.done", "response.done"]
    assert audio_of(events) == SCRIPT.greeting.audio
    deltas = of_type(events, "response.output_audio.delta")
    assert {len(base64.b64decode(d["delta"])) for d in deltas[:-1]} == {800}
    response_id, item_id = events[0]["response"]["id"], events[1]["item"]["id"]
    for delta in deltas:
        assert (delta["response_id"], delta["item_id"], delta["output_index"], delta["content_index"]) == (
            response_id, item_id, 0, 0)
    assert of_type(events, "response.output_audio_transcript.done")[0]["transcript"] == SCRIPT.greeting.text
    assert all("event_id" in e for e in events)

    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": SCRIPT.greeting.text}]
    usage = done["usage"]
    assert usage["output_token_details"]["audio_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert set(usage["input_token_details"]) == {"text_tokens", "audio_tokens", "image_tokens", "cached_tokens",
                                                 "cached_tokens_details"}


async def test_server_vad_finds_the_caller_turn_transcribes_it_and_replies(client: ModelClient) -> None:
    await client.update_session(PCMU_WITH_TRANSCRIPTION)
    caller = SCRIPT.turns[0].caller
    await client.append(SILENCE + caller.audio + SILENCE)
    events = await client.until("response.done")

    [started] = of_type(events, "input_audio_buffer.speech_started")
    [stopped] = of_type(events, "input_audio_buffer.speech_stopped")
    clip_ms = len(caller.audio) // 8
    # Speech begins about 1 s in, reported less the 300 ms prefix padding.
    assert 600 <= started["audio_start_ms"] <= 1000
    # It ends after the clip plus the 500 ms silence window.
    assert 1000 + clip_ms + 400 <= stopped["audio_end_ms"] <= 1000 + clip_ms + 600
    assert stopped["item_id"] == started["item_id"]
    [committed] = of_type(events, "input_audio_buffer.committed")
    assert committed["item_id"] == started["item_id"]
    [transcription] = of_type(events, "conversation.item.input_audio_transcription.completed")
    assert transcription["item_id"] == started["item_id"]
    assert transcription["transcript"] == caller.text
    assert events[-1]["response"]["status"] == "completed"
    assert audio_of(events) == SCRIPT.turns[0].agent.audio


async def test_no_transcription_event_unless_configured(client: ModelClient) -> None:
    await client.update_session({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}})
    await client.append(SILENCE + SCRIPT.turns[0].caller.audio + SILENCE)
    events = await client.until("response.created")
    assert of_type(events, "input_audio_buffer.committed")
    assert not of_type(events, "conversation.item.input_audio_transcription.completed")


async def test_turn_detection_null_means_no_vad_and_manual_commit(client: ModelClient) -> None:
    await client.update_session({**PCMU_WITH_TRANSCRIPTION, "audio": {
        **PCMU_WITH_TRANSCRIPTION["audio"],
        "input": {**PCMU_WITH_TRANSCRIPTION["audio"]["input"], "turn_detection": None}}})
    await client.append(SILENCE + SCRIPT.turns[0].caller.audio + SILENCE)
    await client.send({"type": "input_audio_buffer.commit"})
    events = await client.until("conversation.item.input_audio_transcription.completed")
    assert events[0]["type"] == "input_audio_buffer.committed"
    assert not of_type(events, "input_audio_buffer.speech_started")

    await client.send({"type": "input_audio_buffer.commit"})
    empty = await client.next_event()
    assert empty["error"]["code"] == "input_audio_buffer_commit_empty"


async def test_caller_barge_in_cancels_the_active_response(client: ModelClient) -> None:
    await client.update_session(PCMU_WITH_TRANSCRIPTION)
    await client.send({"type": "response.create", "response": {"instructions": "Greet the caller now."}})
    before = await client.until("response.output_audio.delta")
    await client.append(SCRIPT.turns[1].caller.audio[:8000])
    events = before + await client.until("response.done")

    assert of_type(events, "input_audio_buffer.speech_started")
    done = events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    assert len(audio_of(events)) < len(SCRIPT.greeting.audio)


async def test_response_cancel_stops_an_active_response_and_errors_without_one(
        model: ScriptedModelServer, client: ModelClient) -> None:
    await client.update_session(PCMU_WITH_TRANSCRIPTION)
    await client.send({"type": "response.create"})
    await client.until("response.output_audio.delta")
    await client.send({"type": "response.create"})
    busy = await client.until("error")
    assert busy[-1]["error"]["code"] == "conversation_already_has_active_response"

    await client.send({"type": "response.cancel"})
    done = (await client.until("response.done"))[-1]["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}

    await client.send({"type": "response.cancel"})
    late = await client.next_event()
    assert late["error"]["code"] == "response_cancel_not_active"
    [report] = await sessions_report(model)
    assert report["cancels"] == 2
    assert report["responses"] == 1


async def test_truncate_is_refused_beyond_the_generated_audio_and_recorded_within(
        model: ScriptedModelServer, client: ModelClient) -> None:
    await client.update_session(PCMU_WITH_TRANSCRIPTION)
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    item_id = events[-1]["response"]["output"][0]["id"]
    generated_ms = len(audio_of(events)) // 8

    await client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                       "audio_end_ms": generated_ms + 1000})
    too_long = await client.next_event()
    assert too_long["error"]["code"] == "invalid_value"
    assert too_long["error"]["message"] == (
        f"Audio content of {generated_ms}ms is already shorter than {generated_ms + 1000}ms")

    await client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                       "audio_end_ms": 1200})
    truncated = await client.next_event()
    assert truncated == {"type": "conversation.item.truncated", "event_id": truncated["event_id"],
                         "item_id": item_id, "content_index": 0, "audio_end_ms": 1200}
    [report] = await sessions_report(model)
    assert report["truncates"] == [{"item_id": item_id, "audio_end_ms": 1200, "generated_ms": generated_ms}]


async def test_truncate_of_an_unknown_item_is_an_error(client: ModelClient) -> None:
    await client.send({"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0,
                       "audio_end_ms": 10})
    reply = await client.next_event()
    assert reply["type"] == "error"
    assert reply["error"]["param"] == "item_id"


@pytest.mark.parametrize("message", [
    json.dumps({"type": "conversation.item.retrieve_everything", "event_id": "evt_1"}),
    "{not json",
    json.dumps({"type": "response.cancel", "bogus": True}),
])
async def test_bad_event_gets_an_error_and_the_connection_stays_open(client: ModelClient, message: str) -> None:
    await client.websocket.send(message)
    reply = await client.next_event()
    assert reply["type"] == "error"
    assert reply["error"]["type"] == "invalid_request_error"
    updated = await client.update_session({"type": "realtime", "instructions": "Still here."})
    assert updated["type"] == "session.updated"


async def test_unknown_event_names_the_client_event_id(client: ModelClient) -> None:
    await client.send({"type": "session.frobnicate", "event_id": "evt_42"})
    reply = await client.next_event()
    assert reply["error"]["code"] == "invalid_value"
    assert reply["error"]["param"] == "type"
    assert reply["error"]["event_id"] == "evt_42"


async def test_connection_without_bearer_token_is_refused(model: ScriptedModelServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{model.url}?model=gpt-realtime"):
            pass
    assert refused.value.response.status_code == 401
    assert await sessions_report(model) == []


async def test_health_answers_over_plain_http(model: ScriptedModelServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        response = await http.get(f"http://127.0.0.1:{model.port}/health")
    assert response.status_code == 200


async def test_sessions_report_proves_input_audio_arrived_byte_identical(
        model: ScriptedModelServer, client: ModelClient) -> None:
    await client.update_session(PCMU_WITH_TRANSCRIPTION)
    audio = bytes(range(256)) * 10
    await client.append(audio)
    await client.update_session({"type": "realtime"})  # answered only after every append before it
    [report] = await sessions_report(model)
    assert report["input_audio_bytes"] == len(audio)
    assert report["input_audio_sha256"] == hashlib.sha256(audio).hexdigest()
    assert report["event_types_received"] == ["session.update", "input_audio_buffer.append"]
    assert report["event_counts"]["input_audio_buffer.append"] == len(audio) // FRAME


async def test_concurrent_sessions_follow_the_script_independently(model: ScriptedModelServer) -> None:
    async def greet() -> bytes:
        async with connect(model.url, additional_headers={"Authorization": "Bearer sk-local"}) as websocket:
            session_client = ModelClient(websocket)
            await session_client.next_event()
            await session_client.update_session(PCMU_WITH_TRANSCRIPTION)
            await session_client.send({"type": "response.create"})
            return audio_of(await session_client.until("response.done"))

    greetings = await asyncio.gather(*(greet() for _ in range(5)))
    assert greetings == [SCRIPT.greeting.audio] * 5
    assert len({report["id"] for report in await sessions_report(model)}) == 5
