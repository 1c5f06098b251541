"""What a new Realtime session is told to carry on a call, and which failures end it: pure parts, no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from bridge import realtime_protocol as realtime
from bridge.conversation_memory import CONTINUE_NOTE, MAX_LINE_CHARS, ConversationMemory
from bridge.realtime_connection import is_fatal_connect_error
from bridge.realtime_link import AUDIO_APPEND_PREFIX


def caller(text: str) -> dict[str, Any]:
    return {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i", "transcript": text}


def agent(text: str) -> dict[str, Any]:
    return {"type": "response.output_audio_transcript.done", "item_id": "i", "transcript": text}


def function_call(call_id: str, name: str) -> dict[str, Any]:
    return {"type": "response.done", "response": {"output": [
        {"type": "function_call", "status": "completed", "call_id": call_id, "name": name, "arguments": "{}"},
        {"type": "function_call", "status": "in_progress", "call_id": "unfinished", "name": name, "arguments": ""}]}}


def output(call_id: str) -> dict[str, Any]:
    return {"type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call_id, "output": json.dumps({"ok": True})}}


def conversation() -> ConversationMemory:
    memory = ConversationMemory()
    memory.observe_model_event(agent("Hello, how can I help?"))
    memory.observe_model_event(caller("How much is a tap repair?"))
    memory.observe_model_event(function_call("call_1", "get_pricing"))
    memory.observe_sent(output("call_1"))
    memory.observe_model_event(agent("Ninety-five dollars."))
    return memory


def test_the_whole_conversation_is_replayed_as_ga_items_after_a_note_not_to_greet_again() -> None:
    events = conversation().restore_events(keep_last=40)
    assert all(event["type"] == "conversation.item.create" for event in events)
    items = [event["item"] for event in events]
    assert items[0] == {"type": "message", "role": "system", "content": [{"type": "input_text", "text": CONTINUE_NOTE}]}
    assert items[1] == {"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "Hello, how can I help?"}]}
    assert items[2]["role"] == "user" and items[2]["content"][0] == {"type": "input_text",
                                                                      "text": "How much is a tap repair?"}
    assert items[3] == {"type": "function_call", "call_id": "call_1", "name": "get_pricing", "arguments": "{}"}
    assert items[4] == {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'}
    assert items[5]["content"][0]["text"] == "Ninety-five dollars."
    assert len(items) == 6  # the unfinished call is not replayed


def test_a_long_conversation_keeps_its_last_items_and_summarises_the_rest_in_one_line() -> None:
    events = conversation().restore_events(keep_last=2)
    note, *kept = [event["item"] for event in events]
    # The output's call fell outside the window, so the output goes too: the API refuses an orphan output.
    assert [item["type"] for item in kept] == ["message"]
    assert kept[0]["content"][0]["text"] == "Ninety-five dollars."
    text = note["content"][0]["text"]
    assert text.startswith(CONTINUE_NOTE)
    assert '3 earlier items' in text and 'began with: "How much is a tap repair?"' in text
    assert "Tools used then: get_pricing." in text and "\n" not in text


def test_blank_lines_are_skipped_and_long_ones_capped() -> None:
    memory = ConversationMemory()
    memory.observe_model_event(caller("   "))
    memory.observe_model_event(agent("x" * 5000))
    memory.observe_model_event({"type": "response.done", "response": None})
    memory.observe_sent({"type": "response.create"})
    assert not memory.caller_has_spoken
    [_, line] = [event["item"] for event in memory.restore_events(keep_last=10)]
    assert len(line["content"][0]["text"]) == MAX_LINE_CHARS


def test_the_link_recognises_caller_audio_without_parsing_it() -> None:
    """The link buffers caller audio during a reconnect by its prefix alone: the per-frame path parses nothing."""
    assert realtime.append_audio("AAAA").startswith(AUDIO_APPEND_PREFIX)
    assert not json.dumps(realtime.response_create()).startswith(AUDIO_APPEND_PREFIX)


@pytest.mark.parametrize(("status", "body", "fatal"), [
    (401, b'{"error": {"code": "invalid_api_key"}}', True),
    (404, b"", True),
    (429, b'{"error": {"code": "insufficient_quota", "type": "insufficient_quota"}}', True),
    (429, b'{"error": {"code": "rate_limit_exceeded"}}', False),
    (503, b"not json", False),
])
def test_only_refusals_a_retry_cannot_fix_are_fatal(status: int, body: bytes, fatal: bool) -> None:
    refused = InvalidStatus(Response(status, "refused", Headers(), body))
    assert is_fatal_connect_error(refused) is fatal
    assert is_fatal_connect_error(ConnectionRefusedError()) is False
