"""The GA Realtime client events: which fields each may carry, the session defaults, and how updates merge.

Field names follow the GA reference (session `type: "realtime"`, `audio.input` / `audio.output`).
Beta-only names such as `input_audio_format`, `modalities` or `temperature` are unknown here, exactly
as they are to the GA API, so a client still speaking beta fails loudly against the stand-in.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from local.scripted_model.validation import (
    Check,
    array,
    boolean,
    by_type,
    enum,
    integer,
    json_object,
    nullable,
    number,
    obj,
    string,
    tagged,
)

AUDIO_FORMAT = tagged({
    "audio/pcm": obj({"type": string, "rate": enum(24000)}),
    "audio/pcmu": obj({"type": string}),
    "audio/pcma": obj({"type": string}),
})
VOICE = by_type({str: string, dict: obj({"id": string}, required=["id"])})
TURN_DETECTION = nullable(tagged({
    "server_vad": obj({
        "type": string,
        "threshold": number(0, 1),
        "prefix_padding_ms": integer(0),
        "silence_duration_ms": integer(0),
        "idle_timeout_ms": nullable(integer(0)),
        "create_response": boolean,
        "interrupt_response": boolean,
    }),
    "semantic_vad": obj({
        "type": string,
        "eagerness": enum("low", "medium", "high", "auto"),
        "create_response": boolean,
        "interrupt_response": boolean,
    }),
}))
AUDIO_INPUT = obj({
    "format": AUDIO_FORMAT,
    "transcription": nullable(obj({"model": string, "language": string, "prompt": string})),
    "turn_detection": TURN_DETECTION,
    "noise_reduction": nullable(obj({"type": enum("near_field", "far_field")})),
})
AUDIO_OUTPUT = obj({"format": AUDIO_FORMAT, "voice": VOICE, "speed": number(0.25, 1.5)})
TOOLS = array(tagged({
    "function": obj({"type": string, "name": string, "description": string, "parameters": json_object},
                    required=["name"]),
    "mcp": json_object,  # remote MCP servers: stored, never called by the stand-in
}))
TOOL_CHOICE = by_type({
    str: enum("none", "auto", "required"),
    dict: tagged({
        "function": obj({"type": string, "name": string}, required=["name"]),
        "mcp": obj({"type": string, "server_label": string, "name": string}, required=["server_label"]),
    }),
})
MAX_OUTPUT_TOKENS = by_type({int: integer(1, 4096), str: enum("inf")})
PROMPT = nullable(obj({"id": string, "version": nullable(string), "variables": json_object}, required=["id"]))
OUTPUT_MODALITIES = array(enum("text", "audio"))

SESSION = obj({
    "type": enum("realtime"),
    "model": string,
    "instructions": string,
    "output_modalities": OUTPUT_MODALITIES,
    "audio": obj({"input": AUDIO_INPUT, "output": AUDIO_OUTPUT}),
    "tools": TOOLS,
    "tool_choice": TOOL_CHOICE,
    "max_output_tokens": MAX_OUTPUT_TOKENS,
    "tracing": nullable(by_type({
        str: enum("auto"),
        dict: obj({"workflow_name": string, "group_id": string, "metadata": json_object}),
    })),
    "truncation": by_type({
        str: enum("auto", "disabled"),
        dict: obj({"type": enum("retention_ratio"), "retention_ratio": number(0, 1),
                   "token_limits": obj({"post_instructions": integer(0)})}, required=["type", "retention_ratio"]),
    }),
    "prompt": PROMPT,
    "include": array(enum("item.input_audio_transcription.logprobs")),
    # Newer GA fields for reasoning models; accepted so a current client is not refused.
    "reasoning": json_object,
    "parallel_tool_calls": boolean,
}, required=["type"])

RESPONSE = obj({
    "instructions": string,
    "output_modalities": OUTPUT_MODALITIES,
    "audio": obj({"output": obj({"format": AUDIO_FORMAT, "voice": VOICE})}),
    "conversation": string,
    "metadata": nullable(json_object),
    "tools": TOOLS,
    "tool_choice": TOOL_CHOICE,
    "max_output_tokens": MAX_OUTPUT_TOKENS,
    "input": array(json_object),
    "prompt": PROMPT,
})

CONTENT_PART = tagged({
    "input_text": obj({"type": string, "text": string}),
    "input_audio": obj({"type": string, "audio": string, "transcript": nullable(string)}),
    "output_text": obj({"type": string, "text": string}),
    "output_audio": obj({"type": string, "audio": string, "transcript": nullable(string)}),
})
ITEM_HEADER = {"id": string, "type": string, "object": enum("realtime.item"),
               "status": enum("completed", "incomplete", "in_progress")}
ITEM = tagged({
    "message": obj({**ITEM_HEADER, "role": enum("system", "user", "assistant"), "content": array(CONTENT_PART)},
                   required=["role", "content"]),
    "function_call": obj({**ITEM_HEADER, "call_id": string, "name": string, "arguments": string},
                         required=["name", "arguments"]),
    "function_call_output": obj({**ITEM_HEADER, "call_id": string, "output": string},
                                required=["call_id", "output"]),
})


def _event(fields: dict[str, Check] | None = None, required: tuple[str, ...] = ()) -> Check:
    return obj({"type": string, "event_id": string, **(fields or {})}, required=required)


CLIENT_EVENTS: dict[str, Check] = {
    "session.update": _event({"session": SESSION}, required=("session",)),
    "input_audio_buffer.append": _event({"audio": string}, required=("audio",)),
    "input_audio_buffer.commit": _event(),
    "input_audio_buffer.clear": _event(),
    "response.create": _event({"response": RESPONSE}),
    "response.cancel": _event({"response_id": string}),
    "conversation.item.create": _event({"previous_item_id": nullable(string), "item": ITEM}, required=("item",)),
    "conversation.item.delete": _event({"item_id": string}, required=("item_id",)),
    "conversation.item.truncate": _event(
        {"item_id": string, "content_index": integer(0), "audio_end_ms": integer(0)},
        required=("item_id", "content_index", "audio_end_ms"),
    ),
}

SESSION_TTL_S = 3600
TURN_DETECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "server_vad": {"threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
                   "idle_timeout_ms": None, "create_response": True, "interrupt_response": True},
    "semantic_vad": {"eagerness": "auto", "create_response": True, "interrupt_response": True},
}


def default_session(session_id: str, model: str) -> dict[str, Any]:
    """The session as `session.created` reports it: the GA defaults, PCM at 24 kHz both ways."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful, witty, and friendly AI.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time()) + SESSION_TTL_S,
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {"type": "server_vad", **TURN_DETECTION_DEFAULTS["server_vad"]},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
    }


def _complete_format(audio_format: dict[str, Any]) -> dict[str, Any]:
    # The API echoes PCM with its only rate filled in.
    return {"rate": 24000, **audio_format} if audio_format["type"] == "audio/pcm" else audio_format


def merged_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Apply a validated update: present fields replace, `audio.input`/`audio.output` merge field by field."""
    merged = copy.deepcopy(current)
    for key, value in copy.deepcopy(update).items():
        if key == "audio":
            for side, fields in value.items():
                merged["audio"][side].update(fields)
        else:
            merged[key] = value
    for side in ("input", "output"):
        merged["audio"][side]["format"] = _complete_format(merged["audio"][side]["format"])
    detection = merged["audio"]["input"]["turn_detection"]
    if detection is not None:
        merged["audio"]["input"]["turn_detection"] = {
            "type": detection["type"], **TURN_DETECTION_DEFAULTS[detection["type"]], **detection}
    return merged
