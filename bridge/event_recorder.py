"""CallEvents buffered in memory and written in batches, so the relay never waits on DynamoDB.

`record` only appends to a list. A background task hands the list to the bridge's shared
`EventWriter` every `interval_s`; when a write fails (DynamoDB throttling or down) the events stay
buffered and the next write comes after a growing, jittered delay. Each event gets its sequence
number only when its batch is written, and a retried batch reuses the same numbers, so a retry
overwrites instead of duplicating: every event arrives once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aws_lambda_powertools import Logger

from bridge.backoff import Backoff, retry_until
from bridge.event_writer import EventWriter
from voiceline.calls import NewEvent

logger = Logger(service="voiceline-bridge", child=True)

# Bounds memory while DynamoDB is unreachable. Events carry no audio (a transcript line, a tool call),
# so this is at most a few hundred kB per call.
MAX_BUFFERED = 2000
# A full buffer keeps its oldest events (how the call went, in order) and drops new ones, counting
# them; only the call's closing summary is always kept, and it comes once per call.
KEPT_WHEN_FULL = frozenset({"call_ended"})
RETRY_CAP_S = 5.0  # the longest wait between two tries of the background writer
CLOSE_BACKOFF_BASE_S = 0.1
CLOSE_BACKOFF_CAP_S = 2.0


class CallEventRecorder:
    """Collects one call's events; a background task flushes them every `interval_s`."""

    def __init__(self, call_sid: str, started: float, interval_s: float, writer: EventWriter,
                 max_buffered: int = MAX_BUFFERED) -> None:
        self.call_sid = call_sid
        self._writer = writer
        self.dropped = 0
        self._started = started
        self._interval_s = interval_s
        self._max_buffered = max_buffered
        self._pending: list[NewEvent] = []
        self._in_flight = 0  # events taken out of `_pending` by the write under way
        self._next_seq = 1
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    @property
    def buffered(self) -> int:
        return len(self._pending) + self._in_flight

    def record(self, kind: str, role: str | None = None, text: str | None = None,
               data: dict[str, Any] | None = None) -> None:
        """Never blocks and never raises: the call goes on whatever happens to the recording."""
        if self.buffered >= self._max_buffered and kind not in KEPT_WHEN_FULL:
            if self.dropped == 0:
                logger.warning("call event buffer full; dropping new events", call_sid=self.call_sid,
                               buffered=self.buffered)
            self.dropped += 1
            return
        at_ms = int((time.monotonic() - self._started) * 1000)
        self._pending.append(NewEvent(kind=kind, at_ms=at_ms, role=role, text=text, data=data))

    @property
    def written(self) -> int:
        """Events stored so far: each costs a DynamoDB write in the call's price."""
        return self._next_seq - 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_periodically(), name=f"events-{self.call_sid}")

    async def close(self, deadline_s: float = 10.0) -> None:
        """Stop the background task and write everything left, retrying with backoff until the deadline."""
        give_up_at = time.monotonic() + deadline_s
        if self._task is not None:
            # Not cancelled: a write in flight goes on in its thread, and cancelling its wait would lose the
            # seq numbers it took, so the next write would overwrite those events.
            self._closing.set()
            await asyncio.wait({self._task}, timeout=max(0.0, give_up_at - time.monotonic()))
        written = await retry_until(give_up_at, self._write_all,
                                    Backoff(CLOSE_BACKOFF_BASE_S, CLOSE_BACKOFF_CAP_S))
        if not written:
            lost = self.buffered
            logger.error("gave up flushing call events", call_sid=self.call_sid, lost=lost)
            self.dropped += lost

    async def _flush_periodically(self) -> None:
        backoff = Backoff(self._interval_s, max(RETRY_CAP_S, self._interval_s))
        wait_s = self._interval_s
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), wait_s)
            if self._closing.is_set():
                return
            if await self._write():
                backoff.reset()
                wait_s = self._interval_s
            else:
                wait_s = backoff.next_delay()

    async def _write_all(self) -> bool:
        return await self._write() and not self._pending

    async def _write(self) -> bool:
        """Write the pending batch; on failure keep it, in order, for the next try. True when it was written."""
        if not self._pending:
            return True
        batch, self._pending = self._pending, []
        self._in_flight = len(batch)
        try:
            self._next_seq = await self._writer.append(self.call_sid, self._next_seq, batch)
        except Exception as error:
            logger.warning("call events not written yet, will retry", call_sid=self.call_sid, pending=len(batch),
                           error=repr(error))
            self._pending = batch + self._pending
            return False
        finally:
            self._in_flight = 0
        return True
