"""The local stand-in for Twilio's REST API: the live calls the call simulator places, and their updates.

Twilio's side, under /2010-04-01 with HTTP Basic auth (account SID and auth token), answered with
Twilio's JSON: `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` updates a live call.

The simulator's side, local only, under /local: `POST /local/calls` registers a call it has placed
(form: CallSid, AccountSid, From, To, Direction), and the WebSocket `/local/calls/{CallSid}/events`
carries each update to it as `{"event": "call.updated", "id": n, "parameters": {...}}`; it answers
`{"event": "ack", "id": n}`. Closing that socket ends the call.

    python -m local.twilio_rest --port 3001
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from local.environment import local_environment

TWILIO_REST_PORT = 3001
API_VERSION = "2010-04-01"
ACCOUNT_PATH = f"/{API_VERSION}/Accounts/{{AccountSid}}"
CALL_PATH = f"{ACCOUNT_PATH}/Calls/{{CallSid}}.json"
# How long an update waits for the simulator to take it in before Twilio's answer goes out anyway.
DELIVERY_TIMEOUT_S = 2.0
WS_UNKNOWN_CALL = 4404
# Updates that send a live call to new instructions; Twilio refuses them once the call has ended.
REDIRECTS = ("Twiml", "Url")

Endpoint = Callable[[Request], Awaitable[Response]]


def twilio_error(status: int, code: int, message: str, **extra: str) -> JSONResponse:
    """An error in the shape Twilio's REST API answers with."""
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status, **extra}
    return JSONResponse(body, status)


def _twilio_time(moment: datetime | None) -> str | None:
    """Twilio's REST API writes times as RFC 2822, e.g. "Tue, 10 Aug 2010 08:02:17 +0000"."""
    return None if moment is None else format_datetime(moment)


@dataclass
class LiveCall:
    """One call Twilio is carrying: its resource fields, the updates made to it, and their way out."""

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    direction: str = "inbound"
    status: str = "in-progress"
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: datetime | None = None
    updates: list[dict[str, str]] = field(default_factory=list)  # every update, as posted
    listening: bool = False  # the simulator that placed the call is on its events socket
    outbox: asyncio.Queue[tuple[dict[str, str], asyncio.Future[None]]] = field(default_factory=asyncio.Queue)

    @property
    def is_live(self) -> bool:
        return self.ended is None

    def update(self, parameters: dict[str, str]) -> asyncio.Future[None]:
        """Record an update and queue it for the simulator; the future resolves once it has it."""
        self.updates.append(parameters)
        self.updated = datetime.now(UTC)
        if parameters.get("Status") == "completed":
            self.end()
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.outbox.put_nowait((parameters, delivered))
        return delivered

    def end(self) -> None:
        if self.ended is None:
            self.ended = self.updated = datetime.now(UTC)
            self.status = "completed"

    def resource(self) -> dict[str, Any]:
        """The Call resource as Twilio's REST API returns it (the fields a client reads)."""
        duration = None if self.ended is None else str(int((self.ended - self.started).total_seconds()))
        return {
            "sid": self.sid, "account_sid": self.account_sid, "api_version": API_VERSION,
            "from": self.from_number, "from_formatted": self.from_number,
            "to": self.to_number, "to_formatted": self.to_number,
            "direction": self.direction, "status": self.status, "parent_call_sid": None,
            "date_created": _twilio_time(self.started), "date_updated": _twilio_time(self.updated),
            "start_time": _twilio_time(self.started), "end_time": _twilio_time(self.ended),
            "duration": duration, "price": None, "price_unit": "USD",
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json",
        }


class TwilioRestStandIn:
    """The REST API of one Twilio account, and the calls the simulator has placed on it."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.calls: dict[str, LiveCall] = {}

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route(CALL_PATH, self._authenticated(self.update_call), methods=["POST"]),
            Route("/local/calls", self.register_call, methods=["POST"]),
            WebSocketRoute("/local/calls/{CallSid}/events", self.call_events),
        ])

    # ---- Twilio's REST API ---------------------------------------------------------------------

    def _authenticated(self, endpoint: Endpoint) -> Endpoint:
        """Twilio's Basic auth: the account SID and its auth token, for the account in the path."""

        async def checked(request: Request) -> Response:
            if not self._is_authorised(request.headers.get("authorization", ""),
                                       request.path_params["AccountSid"]):
                response = twilio_error(401, 20003, "Authenticate",
                                        detail="Your AccountSid or AuthToken was incorrect.")
                response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
                return response
            return await endpoint(request)

        return checked

    def _is_authorised(self, authorization: str, path_account_sid: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # compare_digest refuses str with non-ASCII characters: compare the bytes.
        return (secrets.compare_digest(username.encode(), self.account_sid.encode())
                and secrets.compare_digest(password.encode(), self._auth_token.encode())
                and path_account_sid == self.account_sid)

    async def update_call(self, request: Request) -> Response:
        """Update a live call (Status, Twiml, Url, Method…); answered once the simulator has the update.

        A call Twilio never carried is 20404. A call that has ended is still a resource: redirecting it
        is 21220 ("Call is not in-progress. Cannot redirect."), completing it again changes nothing.
        """
        call = self.calls.get(request.path_params["CallSid"])
        if call is None or call.account_sid != request.path_params["AccountSid"]:
            return twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")
        parameters = await _form(request)
        if not call.is_live:
            if any(name in parameters for name in REDIRECTS):
                return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
            return JSONResponse(call.resource())
        delivered = call.update(parameters)
        if call.listening:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(delivered), DELIVERY_TIMEOUT_S)
        return JSONResponse(call.resource())

    # ---- the simulator's side (local only) ------------------------------------------------------

    async def register_call(self, request: Request) -> Response:
        """The simulator placed a call: from now on Twilio knows it, as it would before the voice webhook."""
        form = await _form(request)
        try:
            call = LiveCall(form["CallSid"], form["AccountSid"], form["From"], form["To"],
                            form.get("Direction", "inbound"))
        except KeyError as missing:
            return JSONResponse({"message": f"{missing.args[0]} is required"}, 400)
        known = self.calls.get(call.sid)
        if known is not None and known.is_live:
            return JSONResponse({"message": f"call {call.sid} is already live"}, 409)
        self.calls[call.sid] = call
        return JSONResponse(call.resource(), 201)

    async def call_events(self, websocket: WebSocket) -> None:
        """Pass each update of the call on to the simulator; its closing the socket ends the call."""
        call = self.calls.get(websocket.path_params["CallSid"])
        if call is None or not call.is_live or call.listening:
            await websocket.close(WS_UNKNOWN_CALL)
            return
        await websocket.accept()
        call.listening = True
        unacknowledged: dict[int, asyncio.Future[None]] = {}
        sender = asyncio.create_task(self._send_updates(call, websocket, unacknowledged))
        try:
            while (message := await websocket.receive())["type"] != "websocket.disconnect":
                delivered = unacknowledged.pop(_acknowledged_id(message.get("text")), None)
                if delivered is not None and not delivered.done():
                    delivered.set_result(None)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            call.listening = False
            call.end()
            waiting = list(unacknowledged.values())
            while not call.outbox.empty():  # queued but never sent: nobody is there to take them now
                waiting.append(call.outbox.get_nowait()[1])
            for delivered in waiting:  # the call is over: nobody need wait for the phone
                if not delivered.done():
                    delivered.set_result(None)

    @staticmethod
    async def _send_updates(call: LiveCall, websocket: WebSocket,
                            unacknowledged: dict[int, asyncio.Future[None]]) -> None:
        for number in itertools.count(1):
            parameters, delivered = await call.outbox.get()
            unacknowledged[number] = delivered
            await websocket.send_text(json.dumps({"event": "call.updated", "id": number, "parameters": parameters}))


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form body, as Twilio's clients send it (no multipart parser needed)."""
    return dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))


def _acknowledged_id(text: str | None) -> int | None:
    """The update id of an `{"event": "ack", "id": n}` from the simulator; None for anything else."""
    try:
        message = json.loads(text or "")
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("event") == "ack" and isinstance(message.get("id"), int):
        return message["id"]
    return None


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose connections send at once (TCP_NODELAY, inherited on accept).

    uvicorn writes a response's headers and body separately; with Nagle on, the body of every reply on
    a kept-alive connection waits some 40 ms for the client's delayed ACK, and each hang-up with it.
    """
    listener = socket.create_server((host, port))
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Answer Twilio REST calls locally for the call simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=TWILIO_REST_PORT)
    args = parser.parse_args(argv)
    env = local_environment()
    stand_in = TwilioRestStandIn(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])
    config = uvicorn.Config(stand_in.app(), lifespan="off", proxy_headers=False)
    uvicorn.Server(config).run(sockets=[listening_socket(args.host, args.port)])


if __name__ == "__main__":
    main()
