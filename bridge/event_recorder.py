"""CallEvents buffered in memory and written in batches, so the relay never waits on DynamoDB."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aws_lambda_powertools import Logger

from voiceline.calls import NewEvent, append_events

logger = Logger(service="voiceline-bridge", child=True)

MAX_BUFFERED = 2000  # bounds memory if DynamoDB is unreachable for a long time


class CallEventRecorder:
    """Collects one call's events; a background task flushes them every `interval_s`."""

    def __init__(self, call_sid: str, started: float, interval_s: float) -> None:
        self.call_sid = call_sid
        self.dropped = 0
        self._started = started
        self._interval_s = interval_s
        self._pending: list[NewEvent] = []
        self._next_seq = 1
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def record(self, kind: str, role: str | None = None, text: str | None = None,
               data: dict[str, Any] | None = None) -> None:
        """Never blocks and never raises: the call goes on whatever happens to the recording."""
        if len(self._pending) >= MAX_BUFFERED:
            self._pending.pop(0)
            self.dropped += 1
        at_ms = int((time.monotonic() - self._started) * 1000)
        self._pending.append(NewEvent(kind=kind, at_ms=at_ms, role=role, text=text, data=data))

    @property
    def written(self) -> int:
        """Events stored so far: each costs a DynamoDB write in the call's price."""
        return self._next_seq - 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_periodically(), name=f"events-{self.call_sid}")

    async def close(self, deadline_s: float = 10.0) -> None:
        """Stop the background task and write everything left, retrying until the deadline."""
        if self._task is not None:
            # Not cancelled: a write in flight goes on in its thread, and cancelling its wait would lose the
            # seq numbers it took, so the next write would overwrite those events.
            self._closing.set()
            await asyncio.gather(self._task, return_exceptions=True)
        give_up_at = time.monotonic() + deadline_s
        delay = 0.1
        while self._pending:
            if await self._flush():
                return
            if time.monotonic() + delay > give_up_at:
                logger.error("gave up flushing call events", call_sid=self.call_sid, lost=len(self._pending))
                self.dropped += len(self._pending)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _flush_periodically(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval_s)
            if not self._closing.is_set():
                await self._flush()

    async def _flush(self) -> bool:
        """Write the pending batch; on failure keep it for the next try. True when all written."""
        if not self._pending:
            return True
        batch, self._pending = self._pending, []
        try:
            self._next_seq = await asyncio.to_thread(append_events, self.call_sid, self._next_seq, batch)
        except Exception:
            logger.warning("call events not written yet, will retry", exc_info=True,
                           call_sid=self.call_sid, pending=len(batch))
            self._pending = batch + self._pending
            return False
        return not self._pending
