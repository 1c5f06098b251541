"""Graceful shutdown: on SIGTERM the bridge drains its calls before uvicorn is allowed to stop.

ECS sends SIGTERM, waits its stopTimeout (120 s at most) and then SIGKILLs. uvicorn, left alone,
would stop at once and close every media stream with 1012, cutting live calls. So SIGTERM comes
here instead: `/health` fails and new streams are refused (see bridge/app.py), calls go on for
`drain_timeout_s`, the ones left are ended gracefully within `drain_wind_down_s` (a last line,
then a transfer or a hang-up), and only then is uvicorn told to exit. By then each call has
flushed its events and finalised its Call record, so uvicorn's own shutdown finds nothing to cut.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from aws_lambda_powertools import Logger

from bridge.call_session import SHUTDOWN_END_REASON, CallSession

logger = Logger(service="voiceline-bridge", child=True)

# A refused stream: "try again later" (RFC 6455 §7.4.1, 1013). Twilio does not retry a <Stream>; it
# goes on to the TwiML after <Connect>, so with ours the call ends.
WS_TRY_AGAIN_LATER = 1013
# Calls still open after the wind-down are cut; closing, flushing and finalising each takes this long at most.
CLEAN_UP_S = 15.0


class Drain:
    """The calls in progress, and their orderly end once the bridge has been told to stop."""

    def __init__(self, calls: set[CallSession], timeout_s: float, wind_down_s: float) -> None:
        self.calls = calls
        self.timeout_s = timeout_s
        self.wind_down_s = wind_down_s
        self.started_at: float | None = None
        self._call_ended = asyncio.Event()

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def call_ended(self) -> None:
        self._call_ended.set()

    async def run(self) -> None:
        """Let calls finish, then end the rest gracefully, then cut what is still left. Never raises."""
        self.started_at = time.monotonic()
        logger.info("draining", active_calls=len(self.calls), drain_timeout_s=self.timeout_s)
        if await self._until_no_calls(self.timeout_s):
            return
        logger.info("drain timeout: ending the remaining calls", active_calls=len(self.calls))
        # The last line and the Twilio update must fit in the wind-down, with time left to close the call.
        speak_within_s = max(1.0, self.wind_down_s / 2)
        for session in list(self.calls):
            session.wind_down(speak_within_s)
        if await self._until_no_calls(self.wind_down_s):
            return
        logger.warning("calls still open after the wind-down: cutting them", active_calls=len(self.calls))
        for session in list(self.calls):
            session.end(SHUTDOWN_END_REASON)
        if not await self._until_no_calls(CLEAN_UP_S):
            logger.error("calls did not clean up in time", call_sids=[session.call_sid for session in self.calls])

    async def _until_no_calls(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.calls:
            self._call_ended.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._call_ended.wait(), remaining)
            except TimeoutError:
                return False
        return True


class StopSignal:
    """Routes SIGTERM to `on_stop`, then lets the server exit.

    uvicorn installs its own handler with `signal.signal` before the app starts; this one replaces it
    for the app's lifetime. SIGINT is left to uvicorn: a developer's Ctrl-C stops at once.
    """

    def __init__(self, on_stop: Callable[[], Awaitable[None]]) -> None:
        self._on_stop = on_stop
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set signal handlers; an embedded server stops by its owner
        self._loop = asyncio.get_running_loop()
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    async def uninstall(self) -> None:
        if self._loop is None:
            return
        signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
        self._loop = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between bytecodes: hand over to the loop rather than touch its state here.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        if self._task is not None:
            logger.info("SIGTERM again: already draining")
            return
        logger.info("SIGTERM: draining before exit")
        self._task = asyncio.get_running_loop().create_task(self._stop_then_exit(), name="drain")

    async def _stop_then_exit(self) -> None:
        try:
            await self._on_stop()
        except Exception:
            logger.exception("drain failed")
        finally:
            self._let_server_exit()

    def _let_server_exit(self) -> None:
        server = getattr(self._previous, "__self__", None)
        if server is not None and hasattr(server, "should_exit"):
            # uvicorn's Server: exit as when stopped from code. Handing it the signal instead would make it
            # re-raise SIGTERM once stopped, and a drained, flushed bridge would exit as if killed (143).
            server.should_exit = True
            return
        if callable(self._previous):
            self._previous(signal.SIGTERM, None)
        else:  # SIG_DFL (no server handler at all): die of the signal, as before
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
