"""Shapes of GA server events and conversation items, as pure builders."""

from __future__ import annotations

import secrets
from typing import Any

from local.scripted_model.validation import ProtocolError


def new_id(prefix: str) -> str:
    """An id in the API's style: `event_…`, `item_…`, `resp_…`, `sess_…`."""
    return f"{prefix}_{secrets.token_hex(10)}"


def error(problem: ProtocolError, client_event_id: str | None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": problem.error_type, "code": problem.code,
                                       "message": problem.message, "param": problem.param,
                                       "event_id": client_event_id}}


def response_object(response_id: str, status: str, output: list[dict[str, Any]], session: dict[str, Any],
             usage: dict[str, Any] | None = None, status_details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `response` object of `response.created` and `response.done`."""
    audio_output = session["audio"]["output"]
    return {"id": response_id, "object": "realtime.response", "status": status, "status_details": status_details,
            "output": output, "conversation_id": "conv_default", "output_modalities": ["audio"],
            "max_output_tokens": session["max_output_tokens"], "metadata": None, "usage": usage,
            "audio": {"output": {"format": audio_output["format"], "voice": audio_output["voice"]}}}


def user_audio_item(item_id: str, transcript: str | None) -> dict[str, Any]:
    """A committed caller turn; its transcript arrives later, in its own event."""
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}]}


def assistant_audio_item(item_id: str, status: str, transcript: str | None) -> dict[str, Any]:
    """The agent's spoken reply; no content part until the audio starts."""
    content = [] if transcript is None else [{"type": "output_audio", "transcript": transcript}]
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": status, "role": "assistant",
            "content": content}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    """A function call the model makes; its arguments stream in before the item completes."""
    return {"id": item_id, "object": "realtime.item", "type": "function_call", "status": status, "name": name,
            "call_id": call_id, "arguments": arguments}
