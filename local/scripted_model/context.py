"""The conversation the model remembers: its items in order, and how much text and audio each holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ContextItem:
    id: str
    role: str
    """`user`, `assistant` or `system`; function calls and their outputs count as `tool`."""
    text: str = ""
    audio_ms: int = 0
    """Caller audio committed, or model audio generated so far."""
    truncated_at_ms: int | None = None
    """Set by `conversation.item.truncate`: the model forgets the audio the caller never heard."""

    @property
    def is_model_audio(self) -> bool:
        return self.role == "assistant" and self.audio_ms > 0

    @property
    def remembered_audio_ms(self) -> int:
        return self.audio_ms if self.truncated_at_ms is None else min(self.audio_ms, self.truncated_at_ms)


class ConversationContext:
    def __init__(self) -> None:
        self._items: dict[str, ContextItem] = {}

    def add(self, item: ContextItem) -> None:
        self._items[item.id] = item

    def get(self, item_id: str) -> ContextItem | None:
        return self._items.get(item_id)

    @property
    def last_item_id(self) -> str | None:
        return next(reversed(self._items), None)

    def totals(self) -> tuple[int, int]:
        """(text characters, audio ms) across the whole conversation: what a new response reads as input."""
        items = self._items.values()
        return sum(len(item.text) for item in items), sum(item.remembered_audio_ms for item in items)
