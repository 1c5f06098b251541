"""One writer for every call's events, so that many calls share each DynamoDB request.

Each call's recorder hands over a batch every few seconds, and each batch is a transcript line or
two. Written one by one, at 100 calls that is 50 BatchWriteItem requests a second, each a
millisecond or more of boto3 holding the GIL in a thread while the relay waits for it. The writer
gathers the batches handed over within `gather_s` and writes them together, 25 items to a
request: a tenth of the requests, for events that reach the table at most `gather_s` later.

A failed request fails every batch in it, and each recorder retries its own with backoff. When
DynamoDB rejects the request itself (one call's item too large, say), the batches are written one by
one instead, so that a bad batch fails only its own call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from pynamodb.exceptions import PynamoDBException

from voiceline.calls import EventBatch, NewEvent, write_event_batches

GATHER_S = 0.2


@dataclass
class _Handover:
    batch: EventBatch
    written: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class EventWriter:
    """Writes the batches handed to `append` together, in one thread at a time."""

    def __init__(self, gather_s: float = GATHER_S) -> None:
        self._gather_s = gather_s
        self._queue: list[_Handover] = []
        self._worker: asyncio.Task[None] | None = None

    async def append(self, call_sid: str, first_seq: int, events: Sequence[NewEvent]) -> int:
        """Write `events` with sequence numbers from `first_seq`; returns the next free one, or raises."""
        handover = _Handover(EventBatch(call_sid, first_seq, events))
        self._queue.append(handover)
        if self._worker is None:
            self._worker = asyncio.create_task(self._write_queued(), name="event-writer")
        await handover.written
        return first_seq + len(events)

    async def _write_queued(self) -> None:
        """Runs while batches are queued: waits `gather_s` for others to join, then writes them all."""
        try:
            while self._queue:
                await asyncio.sleep(self._gather_s)
                group, self._queue = self._queue, []
                await self._write([handover for handover in group if not handover.written.done()])
        finally:
            self._worker = None

    async def _write(self, group: list[_Handover]) -> None:
        try:
            await asyncio.to_thread(write_event_batches, [handover.batch for handover in group])
        except Exception as error:
            if len(group) > 1 and _rejected(error):
                for handover in group:
                    await self._write([handover])
                return
            for handover in group:
                _settle(handover, error)
        else:
            for handover in group:
                _settle(handover, None)


def _rejected(error: Exception) -> bool:
    """DynamoDB refused the request as invalid: retrying it as it is can never succeed."""
    return isinstance(error, PynamoDBException) and error.cause_response_code == "ValidationException"


def _settle(handover: _Handover, error: Exception | None) -> None:
    if handover.written.done():  # its recorder stopped waiting
        return
    if error is None:
        handover.written.set_result(None)
    else:
        handover.written.set_exception(error)
