"""Serving one of the local stand-ins (an ASGI app) on 127.0.0.1: in a test's event loop, or on a thread.

Either way the socket is listening before uvicorn starts, so early requests wait in the backlog
instead of being refused, and it sends at once (TCP_NODELAY).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

SHUTDOWN_TIMEOUT_S = 10.0
STARTUP_TIMEOUT_S = 10.0
Lifespan = Literal["on", "off"]


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose connections send at once (TCP_NODELAY, inherited on accept).

    uvicorn writes a response's headers and body separately; with Nagle on, the body of every reply on
    a kept-alive connection waits some 40 ms for the client's delayed ACK.
    """
    listener = socket.create_server((host, port))
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


class _Server(uvicorn.Server):
    """uvicorn's server, which also says when its start-up has ended, well or not (uvicorn only sets a flag).

    A failed start-up leaves `started` false instead of uvicorn's sys.exit, which would stop the whole process
    (a test run) from inside the event loop.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_ended = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit:
            self.should_exit = True
        finally:
            self.startup_ended.set()


def _server(app: ASGIApp, lifespan: Lifespan, ws_max_size: int = 16 * 1024 * 1024) -> _Server:
    # proxy_headers off: like API Gateway, a local stand-in never trusts a client's X-Forwarded-*.
    return _Server(uvicorn.Config(app, ws="websockets-sansio", lifespan=lifespan, log_level="warning",
                                  proxy_headers=False, ws_max_size=ws_max_size))


def _url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://{host}:{port}"


@asynccontextmanager
async def serving(app: ASGIApp, lifespan: Lifespan = "off", host: str = "127.0.0.1", port: int = 0,
                  ws_max_size: int = 16 * 1024 * 1024) -> AsyncIterator[str]:
    """The app in the running event loop; yields its base URL (http://…) once the app has started.

    Started means its lifespan's startup has run, so the caller may read what startup made (app.state).
    `ws_max_size` is uvicorn's --ws-max-size.
    """
    listener = listening_socket(host, port)
    server = _server(app, lifespan, ws_max_size)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        startup_ended = asyncio.create_task(server.startup_ended.wait())
        await asyncio.wait({startup_ended, task}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        startup_ended.cancel()
        if not server.started:  # uvicorn logged why
            raise RuntimeError("the local server did not start")
        yield _url(listener)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, SHUTDOWN_TIMEOUT_S)
        listener.close()


class ThreadedServer:
    """The app on a background thread, for synchronous callers (e.g. beside moto's in-process mock)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = listening_socket(host, port)
        self.url = _url(self._socket)
        self._server = _server(app, "off")
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="local-asgi-server", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=SHUTDOWN_TIMEOUT_S)
        self._socket.close()
