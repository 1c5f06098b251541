"""The agent's past speech, kept in the model's conversation as the words the caller heard instead of audio.

Every response re-reads the whole conversation. The agent's own audio is 20 tokens a second at the audio
input price; the same words as text are a few tokens a second at an eighth of the price (realtime-costs
guide). So, once a spoken item is over, the bridge puts its heard words in a text item right after it and
deletes the audio. "Over" means both: its response is done (no delta, transcript or truncate can still
arrive for it), and its playback is over (every mark came back, or the caller cut in). The text follows
the item it replaces, so the prefix OpenAI cached for the next turn (everything before it) stays intact.

The call session watches for the end of playback; this module only remembers each item and says what to send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Spoken:
    transcript: str
    sent_ms: int  # audio sent to the phone


class SpokenHistory:
    """The agent's audio items whose playback may still be going on, and the text each is swapped for."""

    def __init__(self, forget_unheard: bool) -> None:
        # With the agent's `truncate_on_barge_in` off, the model keeps what the caller never heard: the text
        # then keeps the whole transcript too, so this saving never changes what the model knows.
        self._forget_unheard = forget_unheard
        self._items: dict[str, _Spoken] = {}
        self._cuts: dict[str, int] = {}  # ms heard of each item the caller cut off, before or after its response ended

    def response_done(self, response: dict[str, Any], playing_item: str | None, sent_ms: int) -> str | None:
        """A response ended; returns its spoken item to swap once the phone has played it, if it reached the
        phone at all (else there is no heard part to keep)."""
        for item_id, transcript in spoken_items(response):
            if item_id == playing_item:
                self._items[item_id] = _Spoken(transcript, sent_ms)
                return item_id
        return None

    def cut(self, item_id: str, heard_ms: int) -> None:
        """The caller cut the item off after `heard_ms`, however much more was generated."""
        self._cuts[item_id] = heard_ms

    def swap(self, item_id: str) -> list[str]:
        """The item's playback is over: the messages that put its heard words in place of its audio."""
        spoken = self._items.pop(item_id, None)
        heard_ms = self._cuts.pop(item_id, None)
        if spoken is None:
            return []  # forgotten with the session it belonged to
        if heard_ms is None or not self._forget_unheard:
            heard_ms = spoken.sent_ms
        return swap_for_text(item_id, heard_words(spoken.transcript, heard_ms, spoken.sent_ms))

    def forget(self) -> None:
        """The model session was replaced: its items are gone, and a restored conversation is text already."""
        self._items.clear()
        self._cuts.clear()


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
