"""The conversation the model remembers: its items in order, and how much text and audio each holds."""

from __future__ import annotations

from collections.abc import Callable
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

    def add(self, item: ContextItem, after: str | None = None) -> None:
        """Append the item, or put it right after the item `after` (GA `previous_item_id`; "root" is first)."""
        if after is None or after == self.last_item_id:
            self._items[item.id] = item
            return
        items = list(self._items.items())
        at = 0 if after == "root" else next(i for i, (item_id, _) in enumerate(items) if item_id == after) + 1
        self._items = dict([*items[:at], (item.id, item), *items[at:]])

    def delete(self, item_id: str) -> str | None:
        """Remove an item; returns the id of the item it followed (None when it was first)."""
        ids = list(self._items)
        at = ids.index(item_id)
        del self._items[item_id]
        return ids[at - 1] if at > 0 else None

    def get(self, item_id: str) -> ContextItem | None:
        return self._items.get(item_id)

    @property
    def last_item_id(self) -> str | None:
        return next(reversed(self._items), None)

    @property
    def items(self) -> list[ContextItem]:
        """Every item still in the context, oldest first: what a new response reads as input."""
        return list(self._items.values())

    def drop_oldest(self, keep_tokens: int, tokens_of: Callable[[ContextItem], int]) -> int:
        """Forget the oldest items until the rest weigh at most `keep_tokens`; return how many went.

        The newest item always stays: it is what the response answers.
        """
        remaining = sum(tokens_of(item) for item in self._items.values())
        dropped = 0
        while remaining > keep_tokens and len(self._items) > 1:
            oldest = next(iter(self._items))
            remaining -= tokens_of(self._items.pop(oldest))
            dropped += 1
        return dropped
