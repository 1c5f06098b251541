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


def user_audio_item(item_id: str, transcript: str | None) -> dict[str, Any]:
    """A committed caller turn; its transcript arrives later, in its own event."""
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}]}


def assistant_audio_item(item_id: str, status: str, transcript: str | None) -> dict[str, Any]:
    """The agent's spoken reply; no content part until the audio starts."""
    content = [] if transcript is None else [{"type": "output_audio", "transcript": transcript}]
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": status, "role": "assistant",
            "content": content}
