"""Pre-warmed OpenAI Realtime connections, so a call's session.update goes out with no connect or TLS wait."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from bridge.realtime_connection import open_realtime
from bridge.settings import BridgeSettings

logger = Logger(service="voiceline-bridge", child=True)

REFILL_BACKOFF_S = (1.0, 30.0)  # after a failed open: first wait, and the most it grows to


@dataclass(frozen=True)
class OpenConnection:
    socket: ClientConnection
    opened_at: float
    """time.monotonic() at connect: OpenAI's session limit counts from here, not from the call's start."""


async def open_connection(settings: BridgeSettings, model: str) -> OpenConnection:
    socket = await open_realtime(settings.openai_realtime_url, settings.openai_api_key, model,
                                 settings.openai_connect_timeout_s)
    return OpenConnection(socket, time.monotonic())


class RealtimePool:
    """Pre-warmed connections for each model in `openai_pool_models`; a call for another model connects itself."""

    def __init__(self, settings: BridgeSettings) -> None:
        sized = settings.openai_pool_size > 0  # with no pool, a call's own connect is no miss
        self._pools = {model: _ModelPool(settings, model) for model in settings.openai_pool_models if sized}

    def start(self) -> None:
        for pool in self._pools.values():
            pool.start()

    def take(self, model: str) -> OpenConnection | None:
        """A live, young connection for `model`, or None (the caller then connects itself)."""
        pool = self._pools.get(model)
        return pool.take() if pool is not None else None

    @property
    def idle(self) -> int:
        return sum(len(pool.idle) for pool in self._pools.values())

    @property
    def discarded(self) -> int:
        return sum(pool.discarded for pool in self._pools.values())

    @property
    def missed(self) -> int:
        """Calls for a pooled model that found no idle connection and waited for a connect of their own."""
        return sum(pool.missed for pool in self._pools.values())

    async def aclose(self) -> None:
        await asyncio.gather(*(pool.aclose() for pool in self._pools.values()))


class _ModelPool:
    """Keeps `size` idle connections for one model open, refilled in the background as calls take them.

    Idle connections are replaced before `max_age_s`, so a call never starts on one near OpenAI's
    session limit; a connection found closed (the peer or a keep-alive ping gave up) is never handed out.
    """

    def __init__(self, settings: BridgeSettings, model: str) -> None:
        self.settings = settings
        self.model = model
        self.size = settings.openai_pool_size
        self.max_age_s = settings.openai_pool_max_age_s
        self.idle: deque[OpenConnection] = deque()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.discarded = 0
        self.missed = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_filled(), name=f"realtime-pool {self.model}")

    def take(self) -> OpenConnection | None:
        self._discard_unusable()
        if not self.idle:
            self.missed += 1
            logger.warning("OpenAI pool empty; the call connects itself", model=self.model, pool_size=self.size,
                           missed=self.missed)
            return None
        self._wanted.set()
        return self.idle.popleft()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(close_socket(connection.socket) for connection in self.idle))
        self.idle.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _keep_filled(self) -> None:
        """Open a replacement the moment one is missing, each on its own: a connection taken while others
        are connecting is not kept waiting for them. After a failed open, wait before opening more."""
        backoff = REFILL_BACKOFF_S[0]
        opening: set[asyncio.Task[OpenConnection]] = set()
        try:
            while True:
                self._discard_unusable()
                for _ in range(self.size - len(self.idle) - len(opening)):
                    opening.add(asyncio.create_task(open_connection(self.settings, self.model)))
                self._wanted.clear()
                oldest = self.idle[0].opened_at if self.idle else time.monotonic()
                done = await self._next_change(opening, max(0.0, oldest + self.max_age_s - time.monotonic()))
                opening -= done
                outcomes = [task.exception() or task.result() for task in done]
                errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
                self.idle.extend(outcome for outcome in outcomes if isinstance(outcome, OpenConnection))
                if len(errors) < len(done):
                    backoff = REFILL_BACKOFF_S[0]
                if errors:
                    logger.warning("OpenAI connect failed", pooled=True, model=self.model, error=repr(errors[0]),
                                   failed=len(errors), retry_in_s=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, REFILL_BACKOFF_S[1])
        finally:
            for task in opening:
                task.cancel()
            opened = await asyncio.gather(*opening, return_exceptions=True)
            await asyncio.gather(*(close_socket(item.socket) for item in opened if isinstance(item, OpenConnection)))

    async def _next_change(self, opening: set[asyncio.Task[OpenConnection]],
                           timeout_s: float) -> set[asyncio.Task[OpenConnection]]:
        """Wait for a connect to finish, a call to take a connection, or the oldest to come due; the connects done."""
        wanted = asyncio.create_task(self._wanted.wait())
        try:
            done, _ = await asyncio.wait({*opening, wanted}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wanted.cancel()
        return done - {wanted}

    def _discard_unusable(self) -> None:
        """Drop closed connections and those due for replacement; their close runs in the background."""
        now = time.monotonic()
        for connection in list(self.idle):
            if connection.socket.state is not State.OPEN or now - connection.opened_at >= self.max_age_s:
                self.idle.remove(connection)
                self.discarded += 1
                self._wanted.set()
                task = asyncio.get_running_loop().create_task(close_socket(connection.socket))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)


async def close_socket(socket: ClientConnection) -> None:
    """Close with a bounded wait; a peer already gone needs no goodbye."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(socket.close(), 3)
