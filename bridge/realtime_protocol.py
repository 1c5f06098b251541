"""OpenAI Realtime (GA) client events, as pure functions of the agent and the call's state."""

from __future__ import annotations

import json
from typing import Any

from voiceline.models import Agent


def append_audio(payload: str) -> str:
    # Caller audio goes to the model byte-identical: the base64 string is spliced in untouched.
    return '{"type":"input_audio_buffer.append","audio":"%s"}' % payload  # noqa: UP031 (no escaping needed)


def session_update(agent: Agent, instructions: str) -> dict[str, Any]:
    """The GA session: μ-law in and out (no resampling), the agent's voice, turn taking and prompt."""
    audio_input: dict[str, Any] = {
        "format": {"type": "audio/pcmu"},
        "transcription": {"model": agent.transcription_model, "language": agent.language.split("-")[0]},
        "turn_detection": agent.turn_detection,
        "noise_reduction": {"type": agent.noise_reduction} if agent.noise_reduction else None,
    }
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": agent.model,
            "output_modalities": ["audio"],
            "instructions": instructions,
            "audio": {
                "input": audio_input,
                "output": {"format": {"type": "audio/pcmu"}, "voice": agent.voice, "speed": float(agent.speed)},
            },
        },
    }


def greeting(text: str) -> dict[str, Any]:
    """Make the agent speak first, with the agent's own greeting."""
    return {"type": "response.create",
            "response": {"instructions": f"Greet the caller now. Say exactly: {text}"}}


def barge_in(item_id: str | None, audio_end_ms: int, response_active: bool) -> list[str]:
    """What the model must hear when the caller cuts in: stop talking, forget what was not heard."""
    messages = []
    if response_active:
        messages.append(json.dumps({"type": "response.cancel"}))
    if item_id is not None:
        messages.append(json.dumps({"type": "conversation.item.truncate", "item_id": item_id,
                                    "content_index": 0, "audio_end_ms": audio_end_ms}))
    return messages
