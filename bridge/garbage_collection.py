"""Python's cyclic garbage collector, run on the bridge's terms: small full collections on a schedule.

Every call leaves a few dozen objects in reference cycles that only a full collection frees (the
libraries' own: uvicorn's HTTP protocol for the upgrade, botocore's response parsers). The call's own
objects are not among them: the session lets go of its model link when it ends (CallSession._stop_connecting),
so reference counting frees them at once. Before that, each ended call waited for this collection, which
then took 63 ms to free the 100 calls of one bench run. (A call whose model session failed is still held
until a collection, by the failure's traceback; that is rare.)

CPython runs a full collection only once the pile reaches a quarter of the long-lived heap, so memory
climbs for minutes and then every call's audio stops while one large collection runs. Measured with
`make soak` (50 calls, each replaced after 30 s), when each call was still held in a cycle: without this,
+25 KiB of RSS per call served and still climbing after ten minutes; with a full collection every 30 s,
flat. Its pause is mostly the traversal of the live calls' objects, some 400 a call (their tasks,
coroutines and frames): 16-28 ms at 100 calls on the bench's VM, once a `GC_INTERVAL_S`.

At start, everything loaded so far (FastAPI, botocore's service models, the clients) is frozen: it lives as
long as the process, and out of the collector's sight a full collection scans only the calls' own objects.

CPython's own collections are turned off while the bridge runs: this schedule is the only one. At 100 calls
its young collections each stopped the event loop for 1-1.6 ms about once a second, and every tenth (the
middle generation) for 3.5-36 ms, wherever a greeting or a relayed frame happened to be. Reference counting
frees nearly everything at once; only the library cycles wait for the next scheduled collection.
"""

from __future__ import annotations

import asyncio
import gc
import time

from aws_lambda_powertools import Logger

logger = Logger(service="voiceline-bridge", child=True)


class GarbageCollection:
    """Freezes the start-up heap and turns CPython's own collections off, then runs a full collection every
    `interval_s`; `last_pause_ms` is its cost. Closing turns CPython's collections back on if they were."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._restore_automatic = False  # whether CPython's collections were on at start, to turn back on
        self.collections = 0
        self.last_pause_ms = 0.0

    def start(self) -> None:
        gc.freeze()
        self._restore_automatic = gc.isenabled()
        gc.disable()
        self._task = asyncio.create_task(self._every_interval(), name="garbage-collection")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._restore_automatic:
            gc.enable()

    def collect(self) -> int:
        started = time.perf_counter()
        freed = gc.collect()
        self.last_pause_ms = (time.perf_counter() - started) * 1000
        self.collections += 1
        logger.debug("garbage collected", freed=freed, pause_ms=round(self.last_pause_ms, 1))
        return freed

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.collect()
