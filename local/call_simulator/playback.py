"""The phone's speaker: agent audio plays at 8000 bytes/s; marks echo once the audio before them has played."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from local.mulaw import FRAME_BYTES


@dataclass
class PhonePlayback:
    """A playback buffer driven by the call's 20 ms clock.

    Each tick starts the next frame of queued audio. A frame started at one tick has finished at
    the next, and only then do the marks queued behind it echo, as Twilio's do.
    """

    received_bytes: int = 0
    played_bytes: int = 0
    cleared_bytes: int = 0
    _queue: bytearray = field(default_factory=bytearray)
    _started: int = 0  # bytes that have started playing since the call began
    _finished: int = 0  # bytes that have finished playing
    _marks: deque[tuple[int, str]] = field(default_factory=deque)  # (audio position, name)

    def enqueue(self, audio: bytes) -> None:
        self._queue += audio
        self.received_bytes += len(audio)

    def add_mark(self, name: str) -> bool:
        """Queue a mark behind the audio so far; True when that audio has already played (echo now)."""
        position = self._started + len(self._queue)
        if position <= self._finished:
            return True
        self._marks.append((position, name))
        return False

    def clear(self) -> tuple[int, list[str]]:
        """Drop the unplayed audio; returns the bytes dropped and the pending marks.

        Twilio echoes every pending mark at once after a clear, although their audio never played.
        """
        dropped = len(self._queue)
        self.cleared_bytes += dropped
        self._queue.clear()
        names = [name for _, name in self._marks]
        self._marks.clear()
        return dropped, names

    def tick(self) -> tuple[bytes, list[str]]:
        """Advance 20 ms: returns the agent audio that starts playing now and the marks now played."""
        self._finished = self._started
        played: list[str] = []
        while self._marks and self._marks[0][0] <= self._finished:
            played.append(self._marks.popleft()[1])
        frame = bytes(self._queue[:FRAME_BYTES])
        del self._queue[:FRAME_BYTES]
        self._started += len(frame)
        self.played_bytes += len(frame)
        return frame, played
