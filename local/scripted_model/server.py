"""The scripted model's socket: `/v1/realtime` WebSocket sessions, plus `/health` and `/sessions` over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as serve_websockets
from websockets.http11 import Request, Response

from local.scripted_model.conversation import Script, load_script
from local.scripted_model.faults import FaultPlan, narrow
from local.scripted_model.session import RealtimeSession
from local.scripted_model.usage import CONTEXT_WINDOW_TOKENS

log = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"
DEFAULT_MODEL = "gpt-realtime"
DEFAULT_PACE_S = 0.025  # one 100 ms chunk every 25 ms: four times faster than a phone plays it
MAX_EVENT_BYTES = 16 * 1024 * 1024  # the API takes audio appends of up to 15 MiB


def _json_response(connection: ServerConnection, status: HTTPStatus, body: object) -> Response:
    response = connection.respond(status, json.dumps(body))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


class ScriptedModelServer:
    """A local stand-in for the OpenAI Realtime API (GA protocol) that plays a conversation script.

    Use as `async with ScriptedModelServer(script, port=0) as server:` and connect to `server.url`.
    Every session ever opened stays in `sessions`, in order, for tests to inspect.
    """

    def __init__(self, script: Script, host: str = "127.0.0.1", port: int = 0,
                 pace_s: float = DEFAULT_PACE_S, faults: FaultPlan | None = None,
                 context_window: int = CONTEXT_WINDOW_TOKENS) -> None:
        self.script = script
        self.faults = faults
        self.context_window = context_window
        self.host = host
        self._requested_port = port
        self._pace_s = pace_s
        self.sessions: list[RealtimeSession] = []
        self._server: Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the scripted model is not listening")
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The base URL a client appends `?model=…` to, as with `wss://api.openai.com/v1/realtime`."""
        return f"ws://{self.host}:{self.port}{REALTIME_PATH}"

    @property
    def open_connections(self) -> int:
        """Sockets open on the server now, handshakes under way included."""
        return len(self._server.connections) if self._server is not None else 0

    async def start(self) -> None:
        self._server = await serve_websockets(self._run_session, self.host, self._requested_port,
                                   process_request=self._route, max_size=MAX_EVENT_BYTES)
        if self.faults is not None and self.faults.narrow_sockets:
            for listening in self._server.sockets:
                narrow(listening)
        log.info("scripted realtime model listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> ScriptedModelServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.stop()

    async def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP routes, and the checks the API makes before it upgrades to a WebSocket."""
        path = urlsplit(request.path).path
        if path == "/health":
            return _json_response(connection, HTTPStatus.OK, {"status": "ok"})
        if path == "/sessions":
            return _json_response(connection, HTTPStatus.OK, [s.record.to_json() for s in self.sessions])
        if path != REALTIME_PATH:
            return _json_response(connection, HTTPStatus.NOT_FOUND, {"error": {"message": f"No route {path}"}})
        refusal = await self.faults.answer() if self.faults is not None else None
        if refusal is not None:
            return _json_response(connection, *refusal)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not key.strip():
            return _json_response(connection, HTTPStatus.UNAUTHORIZED, {"error": {
                "type": "invalid_request_error", "code": "missing_api_key",
                "message": "You didn't provide an API key. Provide it in an Authorization header (Bearer)."}})
        return None

    async def _run_session(self, connection: ServerConnection) -> None:
        query = urlsplit(connection.request.path).query if connection.request else ""
        model = parse_qs(query).get("model", [DEFAULT_MODEL])[0]
        fault = self.faults.for_session(len(self.sessions), connection) if self.faults is not None else None
        session = RealtimeSession(connection, self.script, model, self._pace_s, fault, self.context_window)
        self.sessions.append(session)
        await session.run()


async def serve(host: str, port: int, conversation_path: Path,
                context_window: int = CONTEXT_WINDOW_TOKENS, today: date | None = None) -> None:
    """Run the scripted model until cancelled (the CLI's entry point)."""
    script = load_script(conversation_path, today=today)
    async with ScriptedModelServer(script, host, port, context_window=context_window):
        await asyncio.Future()
