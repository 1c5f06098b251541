"""One spoken reply, streamed as GA response events faster than real time, until it completes or is cut."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any

from local.scripted_model.audio_format import audio_format
from local.scripted_model.context import ContextItem
from local.scripted_model.conversation import Line
from local.scripted_model.events import assistant_audio_item, new_id, response_object
from local.scripted_model.usage import InputUsage, output_tokens, usage

CHUNK_MS = 100
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SpokenResponse:
    """Owns every event of one response, so they leave in protocol order even when cancelled midway.

    Deltas go out every `pace_s` (25 ms for 100 ms of audio by default): like the real API, generated
    audio runs well ahead of what a phone has played, which is what makes truncation matter.
    """

    def __init__(self, line: Line, item: ContextItem, previous_item_id: str | None, session: dict[str, Any],
                 read: InputUsage, send: Send, pace_s: float) -> None:
        self.id = new_id("resp")
        self.item = item
        self._line = line
        self._previous_item_id = previous_item_id
        self._session = session
        self._read = read
        self._send = send
        self._pace_s = pace_s
        self._cancel_reason: str | None = None
        self._wake = asyncio.Event()
        self.finished = False

    @property
    def cancellable(self) -> bool:
        return not self.finished and self._cancel_reason is None

    def cancel(self, reason: str) -> None:
        """Stop after the delta in flight; `reason` is `turn_detected` or `client_cancelled`."""
        self._cancel_reason = reason
        self._wake.set()

    def _describe(self, status: str, output: list[dict[str, Any]], used: dict[str, Any] | None = None,
                  status_details: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(self.id, status, output, self._session, used, status_details)

    def _address(self) -> dict[str, Any]:
        return {"response_id": self.id, "item_id": self.item.id, "output_index": 0, "content_index": 0}

    async def play(self) -> None:
        item = assistant_audio_item(self.item.id, "in_progress", None)
        await self._send({"type": "response.created", "response": self._describe("in_progress", [])})
        await self._send({"type": "response.output_item.added", "response_id": self.id, "output_index": 0,
                          "item": item})
        await self._send({"type": "conversation.item.added", "previous_item_id": self._previous_item_id,
                          "item": item})
        await self._send({"type": "response.content_part.added", **self._address(),
                          "part": {"type": "output_audio", "transcript": ""}})
        spoken_words = await self._stream()
        await self._finish(" ".join(self._line.text.split()[:spoken_words]))

    async def _stream(self) -> int:
        """Send audio and transcript deltas until the clip ends or a cancel lands; return the words sent."""
        codec = audio_format(self._session["audio"]["output"]["format"])
        audio = codec.from_ulaw(self._line.audio)
        chunk = codec.bytes_for(CHUNK_MS)
        chunks = math.ceil(len(audio) / chunk)
        words = self._line.text.split()
        sent_words = 0
        for index in range(chunks):
            if self._cancel_reason is not None:
                break
            end = min(len(audio), (index + 1) * chunk)
            await self._send({"type": "response.output_audio.delta", **self._address(),
                              "delta": base64.b64encode(audio[index * chunk:end]).decode()})
            self.item.audio_ms = codec.ms(end)
            due_words = len(words) * (index + 1) // chunks
            if due_words > sent_words:
                await self._send({"type": "response.output_audio_transcript.delta", **self._address(),
                                  "delta": (" " if sent_words else "") + " ".join(words[sent_words:due_words])})
                sent_words = due_words
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._pace_s)
        return sent_words

    async def _finish(self, transcript: str) -> None:
        # Decided before the first await: a cancel arriving from here on finds nothing to cancel.
        self.finished = True
        cancelled = self._cancel_reason is not None
        self.item.text = transcript
        await self._send({"type": "response.output_audio.done", **self._address()})
        await self._send({"type": "response.output_audio_transcript.done", **self._address(),
                          "transcript": transcript})
        await self._send({"type": "response.content_part.done", **self._address(),
                          "part": {"type": "output_audio", "transcript": transcript}})
        item = assistant_audio_item(self.item.id, "incomplete" if cancelled else "completed", transcript)
        await self._send({"type": "response.output_item.done", "response_id": self.id, "output_index": 0,
                          "item": item})
        await self._send({"type": "conversation.item.done", "previous_item_id": self._previous_item_id,
                          "item": item})
        used = usage(self._read, output_tokens(transcript, self.item.audio_ms))
        if cancelled:
            response = self._describe("cancelled", [item], used,
                                      {"type": "cancelled", "reason": self._cancel_reason})
        else:
            response = self._describe("completed", [item], used)
        await self._send({"type": "response.done", "response": response})
