"""OpenAI Realtime (GA) client events, as pure functions of the agent and the call's state."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from voiceline.agent_options import transcription_language
from voiceline.models import Agent


def append_audio(payload: str) -> str:
    # Caller audio goes to the model byte-identical: the base64 string is spliced in untouched.
    return '{"type":"input_audio_buffer.append","audio":"%s"}' % payload  # noqa: UP031 (no escaping needed)


@dataclass(frozen=True)
class FunctionCall:
    """A completed function_call item the model wants us to run."""

    call_id: str
    name: str
    arguments: str  # the model's raw JSON text, validated by whoever runs the tool


def session_update(agent: Agent, instructions: str, tools: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The GA session: μ-law in and out (no resampling), the agent's voice, turn taking, prompt and tools."""
    audio_input: dict[str, Any] = {
        "format": {"type": "audio/pcmu"},
        "transcription": {"model": agent.transcription_model,
                          "language": transcription_language(agent.language, agent.transcription_language)},
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
            "tools": list(tools),
            "tool_choice": "auto",
            "truncation": truncation(agent.retention_ratio),
        },
    }


def truncation(retention_ratio: float | None) -> str | dict[str, Any]:
    """When the context fills, drop down to a share of it at once, so the prompt cache breaks rarely;
    None leaves OpenAI's `auto`, which drops a little on every turn once full (realtime-costs guide)."""
    if retention_ratio is None:
        return "auto"
    return {"type": "retention_ratio", "retention_ratio": float(retention_ratio)}


def system_message(text: str) -> dict[str, Any]:
    """A system message appended to the conversation: how the bridge tells the model something mid-call.

    Unlike new instructions in a `session.update`, or a response's own `instructions` or `tools` (which
    replace the session's for that response), it leaves the cached prefix (instructions, tools, earlier
    items) untouched, so the next response still reads it at the cached rate.
    """
    return {"type": "conversation.item.create", "item": {
        "type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}}


def variables_changed(changes: Mapping[str, str]) -> dict[str, Any]:
    """A mid-call change of template variables, as a system message."""
    return system_message("Update: " + "; ".join(f"{name} is now {value}" for name, value in changes.items()) + ".")


def tools_update(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Change only the session's tools: every field not sent stays as it is."""
    return {"type": "session.update", "session": {"type": "realtime", "tools": list(tools)}}


def greeting(text: str) -> str:
    """What makes the agent speak first, with the agent's own greeting (a system message before the response)."""
    return f"Greet the caller now. Say exactly: {text}"


def response_create(allow_tools: bool = True) -> dict[str, Any]:
    """Ask for the next response. It is steered by a system message before it, never by its own
    `instructions` or `tools`, which would make it read the whole prompt uncached (see `system_message`)."""
    if allow_tools:
        return {"type": "response.create"}
    return {"type": "response.create", "response": {"tool_choice": "none"}}


def function_calls(response: Any) -> list[FunctionCall]:
    """The completed function calls in a `response.done` payload, in order."""
    output = response.get("output") if isinstance(response, dict) else None
    calls = []
    for item in output if isinstance(output, list) else []:
        if (isinstance(item, dict) and item.get("type") == "function_call" and item.get("status") == "completed"
                and isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str)):
            calls.append(FunctionCall(item["call_id"], item["name"], str(item.get("arguments") or "{}")))
    return calls


def function_call_output(call_id: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call_id, "output": json.dumps(output)}}


def barge_in(item_id: str | None, audio_end_ms: int, response_active: bool) -> list[str]:
    """What the model must hear when the caller cuts in: stop talking, forget what was not heard."""
    messages = []
    if response_active:
        messages.append(json.dumps({"type": "response.cancel"}))
    if item_id is not None:
        messages.append(json.dumps({"type": "conversation.item.truncate", "item_id": item_id,
                                    "content_index": 0, "audio_end_ms": audio_end_ms}))
    return messages
