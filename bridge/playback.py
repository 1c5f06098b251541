"""What the caller has actually heard, learned from Twilio's mark echoes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MULAW_BYTES_PER_MS = 8  # 8 kHz, one byte per sample
# A mark follows the audio once this much has gone out unmarked, and at the end of each response's audio.
# Each mark is a message out and its echo a message in: one per 100 ms delta made marks a seventh of the
# bridge's messages. Between marks, a barge-in counts as heard only the audio up to the last echo, so the
# model may be told the caller heard up to this much less than they did: it may repeat a word, and never
# believes the caller heard what they did not.
MARK_EVERY_MS = 200
MARK_EVERY_BYTES = MARK_EVERY_MS * MULAW_BYTES_PER_MS


def base64_decoded_length(payload: str) -> int:
    """Bytes a base64 string decodes to, without decoding it (the payload is only forwarded)."""
    return len(payload) * 3 // 4 - payload.count("=", -2)


@dataclass
class PlaybackTracker:
    """Follows the agent item being played: audio generated versus audio the phone has played.

    A mark goes after every MARK_EVERY_MS of agent audio and after a response's last delta; Twilio
    echoes a mark once the audio before it has played. After a `clear`, Twilio echoes the pending
    marks at once although that audio was never heard, so `clear` forgets them and their late echoes
    match nothing.
    """

    item_id: str | None = None
    generated_bytes: int = 0
    played_ms: int = 0
    _marked_bytes: int = 0  # of generated_bytes, how many a mark sent so far follows
    _marks: deque[tuple[str, str, int]] = field(default_factory=deque)
    _next_mark: int = 0

    @property
    def generated_ms(self) -> int:
        return self.generated_bytes // MULAW_BYTES_PER_MS

    @property
    def has_unplayed_audio(self) -> bool:
        return bool(self._marks) or self.generated_bytes > self._marked_bytes

    def on_agent_audio(self, item_id: str, audio_bytes: int) -> str | None:
        """Account for a delta sent to Twilio; returns the name of a mark to send after it, when one is due."""
        if item_id != self.item_id:
            self.item_id, self.generated_bytes, self.played_ms, self._marked_bytes = item_id, 0, 0, 0
        self.generated_bytes += audio_bytes
        if self.generated_bytes - self._marked_bytes < MARK_EVERY_BYTES:
            return None
        return self._mark()

    def mark_rest(self) -> str | None:
        """The agent's audio paused (a response done, a clip sent): a mark for the audio since the last one, if any."""
        return self._mark() if self.generated_bytes > self._marked_bytes else None

    def _mark(self) -> str:
        assert self.item_id is not None
        self._marked_bytes = self.generated_bytes
        self._next_mark += 1
        name = f"m{self._next_mark}"
        self._marks.append((name, self.item_id, self.generated_ms))
        return name

    def on_mark(self, name: str) -> bool:
        """Twilio echoed a mark; True when it was one of ours still pending."""
        while self._marks:
            pending, item_id, end_ms = self._marks.popleft()
            if pending == name:
                if item_id == self.item_id:
                    self.played_ms = end_ms
                return True
        return False

    def cut(self) -> tuple[str | None, int]:
        """The caller barged in: forget pending marks and unmarked audio; returns (item, ms actually heard).

        OpenAI rejects an audio_end_ms beyond the audio it generated, so the cut is capped.
        """
        self._marks.clear()
        self._marked_bytes = self.generated_bytes
        return self.item_id, min(self.played_ms, self.generated_ms)
