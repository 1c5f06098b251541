"""Retrying writes to AWS: exponential backoff with jitter, capped, and bounded by a deadline.

DynamoDB asks clients that are throttled to back off exponentially and to spread their retries
(jitter), so that many calls on one task, or many tasks, do not retry in step.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable


class Backoff:
    """Delays that double from `base_s` up to `cap_s`, each drawn from its upper half (equal jitter)."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap_s, self._base_s * 2 ** self._attempt)
        self._attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self._attempt = 0


async def retry_until(deadline: float, attempt: Callable[[], Awaitable[bool]], backoff: Backoff) -> bool:
    """Run `attempt` (which never raises) until it returns True, or until the monotonic `deadline`.

    An attempt still running at the deadline is left to finish on its own (a write in a thread cannot
    be taken back), and counts as a failure.
    """
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        task = asyncio.ensure_future(attempt())
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if done and task.result():
            return True
        delay = backoff.next_delay()
        if time.monotonic() + delay >= deadline:
            return False
        await asyncio.sleep(delay)
