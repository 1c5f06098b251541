"""What `/sessions` reports about one connection: the facts tests assert on, never the behaviour."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class SessionRecord:
    id: str
    model: str
    opened_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    closed: bool = False
    event_counts: Counter[str] = field(default_factory=Counter)
    input_audio_bytes: int = 0
    input_audio_hash: Any = field(default_factory=hashlib.sha256)
    """Over every appended byte in order, so a test can prove the relay was byte-identical."""
    truncates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    """Items the client deleted (`conversation.item.delete`), in order."""
    cancels: int = 0
    errors_sent: list[dict[str, Any]] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)
    responses: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Function calls the model made: call_id, name and arguments (parsed)."""
    tool_outputs: list[dict[str, Any]] = field(default_factory=list)
    """function_call_output items the client sent: call_id, and the output parsed when it is JSON."""
    undeclared_tool_calls: list[str] = field(default_factory=list)
    """Scripted calls left out because the client never declared those tools."""
    usages: list[dict[str, Any]] = field(default_factory=list)
    """The `usage` of every `response.done`, in order (estimated: see usage.py)."""
    items_dropped: int = 0
    """Items the context limit pushed out (usage.py, rule 6)."""

    def note_input_audio(self, audio: bytes) -> None:
        self.input_audio_bytes += len(audio)
        self.input_audio_hash.update(audio)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "opened_at": self.opened_at,
            "closed": self.closed,
            "event_types_received": list(self.event_counts),
            "event_counts": dict(self.event_counts),
            "input_audio_bytes": self.input_audio_bytes,
            "input_audio_sha256": self.input_audio_hash.hexdigest(),
            "truncates": self.truncates,
            "deletes": self.deletes,
            "cancels": self.cancels,
            "errors_sent": self.errors_sent,
            "session": self.session,
            "responses": self.responses,
            "tool_calls": self.tool_calls,
            "tool_outputs": self.tool_outputs,
            "undeclared_tool_calls": self.undeclared_tool_calls,
            "usages": self.usages,
            "items_dropped": self.items_dropped,
        }
