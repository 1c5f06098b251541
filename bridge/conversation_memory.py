"""What a new Realtime connection must be told to carry on a call: the conversation so far, as items.

A Realtime session's conversation lives on OpenAI's side and dies with its socket. The bridge keeps
its own copy, from the events it relays, so a reconnected or recycled session starts where the last
one stopped: caller and agent lines as text messages, function calls with their outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_LINE_CHARS = 1000  # a replayed line is context, not a document: a runaway transcript stays bounded
CONTINUE_NOTE = ("This call is already in progress and the connection was renewed. Carry on from where the "
                 "conversation left off; do not greet the caller again.")


@dataclass(frozen=True)
class Entry:
    """One conversation item as the Realtime API takes it in `conversation.item.create`."""

    item: dict[str, Any]
    caller_line: bool = False


class ConversationMemory:
    """The call's conversation in order, fed from the model's events and the bridge's own items."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    @property
    def caller_has_spoken(self) -> bool:
        return any(entry.caller_line for entry in self.entries)

    def observe_model_event(self, event: dict[str, Any]) -> None:
        """Note what a model event adds to the conversation: a transcript line or a function call."""
        kind = event.get("type")
        if kind == "conversation.item.input_audio_transcription.completed":
            self._add_line("user", event.get("transcript"))
        elif kind == "response.output_audio_transcript.done":
            self._add_line("assistant", event.get("transcript"))
        elif kind == "response.done":
            response = event.get("response")
            output = response.get("output") if isinstance(response, dict) else None
            for item in output if isinstance(output, list) else []:
                if isinstance(item, dict) and item.get("type") == "function_call" and item.get("status") == "completed":
                    self.entries.append(Entry({"type": "function_call", "call_id": str(item.get("call_id")),
                                               "name": str(item.get("name")),
                                               "arguments": str(item.get("arguments") or "{}")}))

    def observe_sent(self, event: dict[str, Any]) -> None:
        """Note an item the bridge itself added: a function call's output, or a system message (a variable
        change, or what a response was asked for)."""
        item = event.get("item") if event.get("type") == "conversation.item.create" else None
        if not isinstance(item, dict):
            return
        if item.get("type") == "function_call_output":
            self.entries.append(Entry({"type": "function_call_output", "call_id": str(item.get("call_id")),
                                       "output": str(item.get("output"))}))
        elif item.get("type") == "message" and item.get("role") == "system":
            self.entries.append(Entry(item))

    def restore_events(self, keep_last: int) -> list[dict[str, Any]]:
        """`conversation.item.create` events for a new session: a note, then the last `keep_last` items.

        Older items are summarised in the note. An output whose call was left out goes too: the API
        refuses an output for a call it never saw.
        """
        kept = self.entries[-keep_last:] if keep_last > 0 else []
        earlier = self.entries[:len(self.entries) - len(kept)]
        kept_calls = {entry.item["call_id"] for entry in kept if entry.item["type"] == "function_call"}
        kept = [entry for entry in kept
                if entry.item["type"] != "function_call_output" or entry.item["call_id"] in kept_calls]
        note = CONTINUE_NOTE + (f" {_summary(earlier)}" if earlier else "")
        items = [_message("system", note), *(entry.item for entry in kept)]
        return [{"type": "conversation.item.create", "item": item} for item in items]

    def _add_line(self, role: str, text: Any) -> None:
        if isinstance(text, str) and text.strip():
            self.entries.append(Entry(_message(role, text.strip()[:MAX_LINE_CHARS]), caller_line=role == "user"))


def _message(role: str, text: str) -> dict[str, Any]:
    # GA: user and system content is input_text; the assistant's own words are output_text.
    part = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}


def _summary(earlier: list[Entry]) -> str:
    """One line about the part of the call that is not replayed."""
    first_caller_line = next((entry.item["content"][0]["text"] for entry in earlier if entry.caller_line), None)
    tools = sorted({entry.item["name"] for entry in earlier if entry.item["type"] == "function_call"})
    summary = f"{len(earlier)} earlier items of this call are not repeated here."
    if first_caller_line is not None:
        summary += f" The caller began with: {json.dumps(first_caller_line[:200])}."
    if tools:
        summary += f" Tools used then: {', '.join(tools)}."
    return summary
