"""Faults the scripted model makes on request, so tests can see a client survive OpenAI misbehaving.

A test builds a `FaultPlan` and gives it to `ScriptedModelServer(..., faults=plan)`:

    plan = FaultPlan()
    plan.refuse(2, HTTPStatus.SERVICE_UNAVAILABLE, first=1)   # handshakes 1 and 2 (from 0) get 503
    plan.fail_session(0, SessionFault("drop", after_event="response.done", count=2))
    plan.fail_session(1, SessionFault("invalid_api_key"))   # an `error` event after the first response
    plan.narrow_sockets = True                               # a client's sends block soon when a session stalls
    plan.fail_session(2, SessionFault("stall", after_event="session.created"))   # then reads nothing for 5 s

Handshakes are numbered from 0 in the order they come; sessions from 0 in the order the server accepts
them (a refused handshake opens no session).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection

from local.scripted_model import events
from local.scripted_model.validation import ProtocolError

DROP = "drop"
SERVER_ERROR = "server_error"
STALL = "stall"
NARROW_SEGMENT_BYTES = 536  # TCP's minimum MSS
NARROW_RECEIVE_BUFFER_BYTES = 4096
_REFUSAL_CODES = {HTTPStatus.UNAUTHORIZED: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
                  HTTPStatus.TOO_MANY_REQUESTS: ("insufficient_quota", "insufficient_quota",
                                                 "You exceeded your current quota.")}


@dataclass(frozen=True)
class SessionFault:
    """What one session does wrong, once it has sent `count` events of type `after_event`, or `after_s` after it opened.

    `action` is "drop" (the TCP connection is cut, no close frame), "server_error" (an `error` event of type
    server_error, as OpenAI sends when its side fails), "stall" (the session stops reading its socket for
    `stall_s`, as a hung peer would, so the client's sends soon block), or any other error code (e.g.
    "invalid_api_key", "insufficient_quota", "model_not_found"), sent as an `error` event with that code.
    """

    action: str
    after_event: str = "response.done"
    count: int = 1
    after_s: float | None = None
    stall_s: float = 5.0


class FaultPlan:
    """Faults for the server's coming handshakes and sessions; also when each handshake came."""

    def __init__(self) -> None:
        self._refusals: dict[int, HTTPStatus] = {}
        self._session_faults: dict[int, SessionFault] = {}
        self.connects: list[float] = []
        """time.monotonic() at which every handshake arrived, refused or not, held or answered."""
        self.handshake_delay_s = 0.0
        """Added before each handshake is answered: stands in for the network and TLS to a distant API."""
        self.narrow_sockets = False
        """Small TCP segments and receive buffers, so that a client's sends to a stalled session block after a few
        tens of KB, as over a real network; on loopback's 64 KB segments its kernel would buffer megabytes first."""

    def refuse(self, count: int, status: HTTPStatus = HTTPStatus.SERVICE_UNAVAILABLE, first: int | None = None) -> None:
        """Refuse `count` handshakes with `status`, from handshake number `first` (default: the next one)."""
        start = len(self.connects) if first is None else first
        self._refusals.update({number: status for number in range(start, start + count)})

    def fail_session(self, number: int, fault: SessionFault) -> None:
        self._session_faults[number] = fault

    async def answer(self) -> tuple[HTTPStatus, dict[str, Any]] | None:
        """Note a handshake's arrival, hold it `handshake_delay_s`, then the status and error body to refuse it
        with, or None to let it through."""
        number = len(self.connects)
        self.connects.append(time.monotonic())
        if self.handshake_delay_s:
            await asyncio.sleep(self.handshake_delay_s)
        status = self._refusals.get(number)
        if status is None:
            return None
        error_type, code, message = _REFUSAL_CODES.get(status, ("server_error", None, status.phrase))
        return status, {"error": {"type": error_type, "code": code, "message": message, "param": None}}

    def for_session(self, number: int, connection: ServerConnection) -> ArmedFault | None:
        fault = self._session_faults.get(number)
        return ArmedFault(fault, connection) if fault is not None else None


class ArmedFault:
    """One session's fault, watching what it sends; fires once."""

    def __init__(self, fault: SessionFault, connection: ServerConnection) -> None:
        self.fault = fault
        self._connection = connection
        self._seen = 0
        self.fired = False
        self._timer: asyncio.TimerHandle | None = None
        self.reading = asyncio.Event()
        """Cleared while a stall lasts: the session reads nothing, not even what its socket had already taken in."""
        self.reading.set()

    def arm(self, send: Any) -> None:
        """Start the clock for an `after_s` fault; `send` is the session's own event sender."""
        if self.fault.after_s is not None:
            self._timer = asyncio.get_running_loop().call_later(
                self.fault.after_s, lambda: asyncio.ensure_future(self._fire(send)))

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def after_sent(self, event_type: str, send: Any) -> None:
        if self.fired or self.fault.after_s is not None or event_type != self.fault.after_event:
            return
        self._seen += 1
        if self._seen >= self.fault.count:
            await self._fire(send)

    async def _fire(self, send: Any) -> None:
        if self.fired:
            return
        self.fired = True
        if self.fault.action == DROP:
            self._connection.transport.abort()
            return
        if self.fault.action == STALL:
            self._stall()
            return
        error_type = "server_error" if self.fault.action == SERVER_ERROR else "invalid_request_error"
        await send(events.error(ProtocolError(self.fault.action, f"Scripted fault: {self.fault.action}.",
                                              error_type=error_type), None))

    def _stall(self) -> None:
        transport = self._connection.transport
        transport.pause_reading()
        self.reading.clear()

        def resume() -> None:
            self.reading.set()
            transport.resume_reading()

        asyncio.get_running_loop().call_later(self.fault.stall_s, resume)


def narrow(listening: socket.socket) -> None:
    """What `FaultPlan.narrow_sockets` asks for, set on the listening socket so that every connection inherits it."""
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, NARROW_SEGMENT_BYTES)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NARROW_RECEIVE_BUFFER_BYTES)
