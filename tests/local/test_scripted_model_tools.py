"""Scripted function calls over a real WebSocket: streamed arguments, parallel calls, outputs, and /sessions."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from local.scripted_model import ScriptedModelServer, load_script
from local.scripted_model.conversation import Script
from local.scripted_model.function_calls import ARGUMENT_CHUNK
from local.scripted_model.server import REALTIME_PATH
from local.stack import free_port, wait_listening
from tests.local.test_scripted_model import ROOT, ModelClient, audio_of, of_type, sessions_report

SATURDAY = date(2026, 11, 21)
AVAILABILITY_ARGUMENTS = {"service": "tap repair", "date": "{next_business_day}", "duration_minutes": 60}
CUSTOMER_ARGUMENTS = {"phone": "+15551230000"}
AGENT_LINE = "Monday at ten works, and I have your details."
AGENT_CLIP = bytes(range(0x80, 0xFF)) * 4  # any μ-law bytes: the model streams the clip as it is
TOOLS = {
    name: {"type": "function", "name": name, "description": f"{name} for the test",
           "parameters": {"type": "object", "properties": {}}}
    for name in ("check_availability", "lookup_customer")
}
PCMU_MANUAL_TURNS = {
    "type": "realtime",
    "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None},
        "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
    },
}
TURN_AUDIO = b"\xff" * 1600  # 200 ms of μ-law silence: enough to commit by hand


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One caller turn whose answer needs two parallel calls."""
    directory = tmp_path_factory.mktemp("tool_conversation")
    for clip in ("greeting.ulaw", "caller_1.ulaw"):
        (directory / clip).write_bytes(b"\x7f" * 160)
    (directory / "agent_1.ulaw").write_bytes(AGENT_CLIP)
    conversation = {
        "greeting": {"text": "Hello.", "audio": "greeting.ulaw"},
        "turns": [{
            "caller": {"text": "Can someone come on Monday?", "audio": "caller_1.ulaw"},
            "agent": {"text": AGENT_LINE, "audio": "agent_1.ulaw", "tool_calls": [
                {"name": "check_availability", "arguments": AVAILABILITY_ARGUMENTS},
                {"name": "lookup_customer", "arguments": CUSTOMER_ARGUMENTS},
            ]},
        }],
    }
    path = directory / "conversation.json"
    path.write_text(json.dumps(conversation))
    return path


@pytest.fixture(scope="module")
def script(conversation: Path) -> Script:
    """The conversation with its dates fixed by loading it on a Saturday."""
    return load_script(conversation, conversation.parent, today=SATURDAY)


@pytest.fixture
async def model(script: Script) -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(script, "127.0.0.1", 0) as server:
        yield server


@pytest.fixture
async def client(model: ScriptedModelServer) -> AsyncIterator[ModelClient]:
    async with ModelClient.open(model) as session_client:
        yield session_client


async def start_session(client: ModelClient, tools: list[dict[str, Any]]) -> None:
    updated = await client.update_session({**PCMU_MANUAL_TURNS, "tools": tools})
    assert updated["type"] == "session.updated"


async def caller_asks(client: ModelClient) -> list[dict[str, Any]]:
    """The caller's turn, committed by hand, then a response: every event up to its `response.done`."""
    await client.append(TURN_AUDIO)
    await client.send({"type": "input_audio_buffer.commit"})
    await client.until("input_audio_buffer.committed")
    await client.send({"type": "response.create"})
    return await client.until("response.done")


async def send_output(client: ModelClient, call_id: str, output: Any) -> dict[str, Any]:
    """A `function_call_output` item; returns the server's answer (`conversation.item.added` or an error)."""
    text = output if isinstance(output, str) else json.dumps(output)
    await client.send({"type": "conversation.item.create",
                       "item": {"type": "function_call_output", "call_id": call_id, "output": text}})
    answer = await client.next_event()
    if answer["type"] == "conversation.item.added":
        assert (await client.next_event())["type"] == "conversation.item.done"
    return answer


def calls_in(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in events[-1]["response"]["output"] if item["type"] == "function_call"]


async def test_the_command_line_today_sets_the_day_the_dates_count_from(conversation: Path, tmp_path: Path) -> None:
    """`--today`, as the local stack passes it: a model started as if on a Saturday books the Monday after,
    whatever the date is now."""
    # The command line reads clips from local/audio: the same conversation, spoken with the demo's clips.
    spoken = json.loads(conversation.read_text())
    spoken["greeting"]["audio"] = "greeting.ulaw"
    spoken["turns"][0]["caller"]["audio"] = "demo_caller_1.ulaw"
    spoken["turns"][0]["agent"]["audio"] = "demo_agent_1.ulaw"
    (tmp_path / "conversation.json").write_text(json.dumps(spoken))
    port = free_port()
    command = [sys.executable, "-m", "local.scripted_model", "--port", str(port),
               "--conversation", str(tmp_path / "conversation.json"), "--today", SATURDAY.isoformat()]
    log = tmp_path / "model.log"
    with log.open("wb") as output, subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output) as process:
        try:
            wait_listening(process, port, "the scripted model", log.read_text)
            async with ModelClient.open(f"ws://127.0.0.1:{port}{REALTIME_PATH}") as client:
                await start_session(client, list(TOOLS.values()))
                [availability, _] = calls_in(await caller_asks(client))
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert json.loads(availability["arguments"])["date"] == "2026-11-23"


async def test_function_call_arguments_stream_in_deltas_that_join_to_the_done_arguments(
        client: ModelClient) -> None:
    await start_session(client, list(TOOLS.values()))
    events = await caller_asks(client)

    assert not of_type(events, "response.output_audio.delta")
    [availability, _] = calls_in(events)
    arguments = availability["arguments"]
    assert json.loads(arguments) == {**AVAILABILITY_ARGUMENTS, "date": "2026-11-23"}
    address = (events[-1]["response"]["id"], availability["id"], 0, availability["call_id"])
    deltas = [e for e in of_type(events, "response.function_call_arguments.delta")
              if (e["response_id"], e["item_id"], e["output_index"], e["call_id"]) == address]
    assert len(deltas) == -(-len(arguments) // ARGUMENT_CHUNK) > 1
    assert "".join(delta["delta"] for delta in deltas) == arguments
    [done] = [e for e in of_type(events, "response.function_call_arguments.done") if e["item_id"] == address[1]]
    assert (done["name"], done["arguments"], done["call_id"]) == ("check_availability", arguments, address[3])

    call_events = [e["type"] for e in events if e.get("item_id", e.get("item", {}).get("id")) == address[1]]
    assert call_events[:2] == ["response.output_item.added", "conversation.item.added"]
    assert call_events[-3:] == ["response.function_call_arguments.done", "response.output_item.done",
                                "conversation.item.done"]
    added = of_type(events, "response.output_item.added")[0]["item"]
    assert (added["type"], added["status"], added["arguments"]) == ("function_call", "in_progress", "")
    assert availability["status"] == "completed"


async def test_parallel_calls_come_in_one_response_with_their_own_indexes_and_call_ids(
        client: ModelClient) -> None:
    await start_session(client, list(TOOLS.values()))
    events = await caller_asks(client)

    assert len(of_type(events, "response.created")) == 1
    assert events[-1]["response"]["status"] == "completed"
    calls = calls_in(events)
    assert [call["name"] for call in calls] == ["check_availability", "lookup_customer"]
    assert len({call["call_id"] for call in calls}) == 2
    assert [e["output_index"] for e in of_type(events, "response.output_item.done")] == [0, 1]
    assert [e["item"] for e in of_type(events, "response.output_item.done")] == calls
    added = [e for e in of_type(events, "conversation.item.added") if e["item"]["type"] == "function_call"]
    assert added[1]["previous_item_id"] == calls[0]["id"]  # the second call follows the first in context
    assert events[-1]["response"]["usage"]["output_tokens"] > 0


async def test_outputs_then_response_create_speak_the_line_the_calls_were_for(client: ModelClient) -> None:
    await start_session(client, list(TOOLS.values()))
    calls = calls_in(await caller_asks(client))
    for call in calls:
        added = await send_output(client, call["call_id"], {"ok": True, "call": call["name"]})
        assert added["item"]["type"] == "function_call_output"
        assert added["item"]["call_id"] == call["call_id"]
    await client.send({"type": "response.create"})
    events = await client.until("response.done")

    assert audio_of(events) == AGENT_CLIP
    assert of_type(events, "response.output_audio_transcript.done")[0]["transcript"] == AGENT_LINE
    assert not of_type(events, "response.function_call_arguments.delta")
    assert events[-1]["response"]["status"] == "completed"


async def test_response_create_before_every_output_is_function_call_output_missing(
        client: ModelClient) -> None:
    await start_session(client, list(TOOLS.values()))
    availability, customer = calls_in(await caller_asks(client))
    await send_output(client, availability["call_id"], {"ok": True})
    await client.send({"type": "response.create", "event_id": "event_early"})
    error = await client.next_event()

    assert error["type"] == "error"
    assert error["error"]["code"] == "function_call_output_missing"
    assert customer["call_id"] in error["error"]["message"]
    assert availability["call_id"] not in error["error"]["message"]
    assert error["error"]["event_id"] == "event_early"

    await send_output(client, customer["call_id"], {"ok": True})  # the round goes on once it is complete
    await client.send({"type": "response.create"})
    assert audio_of(await client.until("response.done")) == AGENT_CLIP


async def test_output_for_an_unknown_call_id_is_an_error_and_not_recorded(
        model: ScriptedModelServer, client: ModelClient) -> None:
    await start_session(client, list(TOOLS.values()))
    await caller_asks(client)
    error = await send_output(client, "call_never_made", {"ok": True})

    assert error["type"] == "error"
    assert (error["error"]["code"], error["error"]["param"]) == ("invalid_value", "item.call_id")
    assert "call_never_made" in error["error"]["message"]
    [report] = await sessions_report(model)
    assert report["tool_outputs"] == []


async def test_tools_the_client_never_declared_are_not_called_but_recorded(
        model: ScriptedModelServer, client: ModelClient) -> None:
    await start_session(client, [TOOLS["check_availability"]])
    events = await caller_asks(client)

    assert [call["name"] for call in calls_in(events)] == ["check_availability"]
    [report] = await sessions_report(model)
    assert report["undeclared_tool_calls"] == ["lookup_customer"]
    assert [call["name"] for call in report["tool_calls"]] == ["check_availability"]


async def test_with_no_tools_declared_the_agent_just_speaks_its_line(
        model: ScriptedModelServer, client: ModelClient) -> None:
    await start_session(client, [])
    events = await caller_asks(client)

    assert not calls_in(events)
    assert audio_of(events) == AGENT_CLIP
    [report] = await sessions_report(model)
    assert report["undeclared_tool_calls"] == ["check_availability", "lookup_customer"]


async def test_tools_given_with_response_create_count_as_declared(client: ModelClient) -> None:
    await start_session(client, [])
    await client.append(TURN_AUDIO)
    await client.send({"type": "input_audio_buffer.commit"})
    await client.until("input_audio_buffer.committed")
    await client.send({"type": "response.create", "response": {"tools": [TOOLS["lookup_customer"]]}})
    events = await client.until("response.done")
    assert [call["name"] for call in calls_in(events)] == ["lookup_customer"]


async def test_sessions_record_carries_the_calls_and_their_outputs(
        model: ScriptedModelServer, client: ModelClient) -> None:
    await start_session(client, list(TOOLS.values()))
    availability, customer = calls_in(await caller_asks(client))
    await send_output(client, availability["call_id"], {"ok": True, "output": {"slots": ["10:00"]}})
    await send_output(client, customer["call_id"], "no customer with that number")  # plain text stays text
    [report] = await sessions_report(model)

    assert report["tool_calls"] == [
        {"call_id": availability["call_id"], "name": "check_availability",
         "arguments": {**AVAILABILITY_ARGUMENTS, "date": "2026-11-23"}},
        {"call_id": customer["call_id"], "name": "lookup_customer", "arguments": CUSTOMER_ARGUMENTS},
    ]
    assert report["tool_outputs"] == [
        {"call_id": availability["call_id"], "output": {"ok": True, "output": {"slots": ["10:00"]}}},
        {"call_id": customer["call_id"], "output": "no customer with that number"},
    ]
    assert report["event_counts"]["conversation.item.create"] == 2
