"""The agent's past speech, kept in the model's conversation as the words the caller heard instead of audio.

Every response re-reads the whole conversation. The agent's own audio is 20 tokens a second at the audio
input price; the same words as text are a few tokens a second at an eighth of the price (realtime-costs
guide). So, once a spoken item is over, the bridge puts its heard words in a text item right after it and
deletes the audio. "Over" means both: its response is done (no delta, transcript or truncate can still
arrive for it), and its playback is over (every mark came back, or the caller cut in). The text follows
the item it replaces, so the prefix OpenAI cached for the next turn (everything before it) stays intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class _Spoken:
    transcript: str | None = None  # known when its response is done
    sent_ms: int = 0  # audio sent to the phone, final when its response is done
    heard_ms: int | None = None  # known when the phone has played all of it sent so far, or the caller cut in
    cut: bool = False

    @property
    def over(self) -> bool:
        return (self.transcript is not None and self.heard_ms is not None
                and (self.cut or self.heard_ms >= self.sent_ms))


class SpokenHistory:
    """Follows the agent's audio items until each can be swapped for its text; says what to send then."""

    def __init__(self, forget_unheard: bool) -> None:
        # With the agent's `truncate_on_barge_in` off, the model keeps what the caller never heard: the text
        # then keeps the whole transcript too, so this saving never changes what the model knows.
        self._forget_unheard = forget_unheard
        self._items: dict[str, _Spoken] = {}

    def response_done(self, response: dict[str, Any], playing_item: str | None, sent_ms: int) -> list[str]:
        """A response ended: the item being played, if it is one of this response's, has its final transcript."""
        for item_id, transcript in spoken_items(response):
            if item_id == playing_item:  # else none of it reached the phone: there is no heard part to keep
                spoken = self._items.setdefault(item_id, _Spoken())
                spoken.transcript, spoken.sent_ms = transcript, sent_ms
                return self._swap_if_over(item_id)
        return []

    def played(self, item_id: str, heard_ms: int) -> list[str]:
        """The phone has played everything sent of the item so far: `heard_ms` of it."""
        self._items.setdefault(item_id, _Spoken()).heard_ms = heard_ms
        return self._swap_if_over(item_id)

    def cut(self, item_id: str, heard_ms: int) -> list[str]:
        """The caller cut the item off after `heard_ms`, however much more was generated."""
        spoken = self._items.setdefault(item_id, _Spoken())
        spoken.heard_ms, spoken.cut = heard_ms, True
        return self._swap_if_over(item_id)

    def forget(self) -> None:
        """The model session was replaced: its items are gone, and a restored conversation is text already."""
        self._items.clear()

    def _swap_if_over(self, item_id: str) -> list[str]:
        spoken = self._items[item_id]
        if not spoken.over:
            return []  # its response still runs, or the phone caught up with it mid-response
        del self._items[item_id]
        assert spoken.transcript is not None and spoken.heard_ms is not None
        text = heard_words(spoken.transcript, spoken.heard_ms, spoken.sent_ms) if self._forget_unheard \
            else spoken.transcript
        return swap_for_text(item_id, text)


def spoken_items(response: dict[str, Any]) -> list[tuple[str, str]]:
    """(item id, transcript) of each assistant audio message in a `response.done` payload."""
    found = []
    output = response.get("output")
    for item in output if isinstance(output, list) else []:
        if not (isinstance(item, dict) and item.get("type") == "message" and item.get("role") == "assistant"
                and isinstance(item.get("id"), str) and isinstance(item.get("content"), list)):
            continue
        transcripts = [part.get("transcript") for part in item["content"]
                       if isinstance(part, dict) and part.get("type") == "output_audio"]
        if transcripts:
            found.append((item["id"], " ".join(text for text in transcripts if isinstance(text, str))))
    return found


def heard_words(transcript: str, heard_ms: int, sent_ms: int) -> str:
    """The words the caller heard, pro rata of the audio sent: speech is close to even in pace. Deltas the
    bridge dropped after a cut are not counted, so a cut mid-generation may keep a word or two too many."""
    if heard_ms >= sent_ms:
        return transcript
    words = transcript.split()
    return " ".join(words[:len(words) * heard_ms // sent_ms])


def swap_for_text(item_id: str, text: str) -> list[str]:
    """The text goes in right after the audio item, then the audio goes: the order never has a gap."""
    messages = []
    if text:
        messages.append(json.dumps({"type": "conversation.item.create", "previous_item_id": item_id, "item": {
            "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}}))
    messages.append(json.dumps({"type": "conversation.item.delete", "item_id": item_id}))
    return messages
