"""Threads of their own for the reads a caller waits on: the agent and the call, at `start`.

boto3 blocks, so DynamoDB calls run in threads. asyncio's default pool has only cpu + 4 of them, and
the writes go through it too (the shared event writer's requests, each Call's status writes): when
DynamoDB is slow they can hold every thread, and a new call's reads, queued behind them, would hold
its greeting. Writes keep the default pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
THREADS = 8  # reads at call start are short and few at once; a burst of arrivals shares these

_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="setup-read")


async def read(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` on a set-up thread, for the caller waiting on it."""
    return await asyncio.get_running_loop().run_in_executor(_pool, function, *args)
