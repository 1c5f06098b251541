"""The local stand-in for Twilio's REST API: numbers, outbound calls, and the live calls the call simulator places.

Twilio's side, under /2010-04-01 with HTTP Basic auth (account SID and auth token), answered with
Twilio's JSON and error codes:
- `POST …/Calls/{CallSid}.json` updates a live call (hang up, new TwiML);
- `POST …/Calls.json` places an outbound call: the call simulator plays the callee, who gets the
  signed voice webhook (Direction=outbound-api, AnsweredBy when MachineDetection is set), the
  media stream and the status callback, exactly as for an inbound call;
- `GET …/AvailablePhoneNumbers/{Country}/Local.json` searches a fixed, fictional inventory
  (local/twilio_numbers.py); `…/IncomingPhoneNumbers.json` (create, list) and
  `…/IncomingPhoneNumbers/{Sid}.json` (get, update, delete) buy, find, point and release numbers.

The local side, under /local, for the simulator and tests: `POST /local/calls` registers a call the
simulator placed (form: CallSid, AccountSid, From, To, Direction), and the WebSocket
`/local/calls/{CallSid}/events` carries each update to it as `{"event": "call.updated", "id": n,
"parameters": {...}}`; it answers `{"event": "ack", "id": n}`. Closing that socket ends the call.
`GET /local/calls/{CallSid}?wait=10` tells what became of a call (for an outbound one, the
simulator's report), waiting up to `wait` seconds for it to end. `PUT /local/callees/{number}`
(`{"answers": "machine", "conversation": "outbound.json"}`) sets how a number answers, and
`POST /local/faults` (`{"method", "path", "status", "code", "message", "delay_s", "times"}`) makes
matching REST requests fail or stall; `DELETE /local/faults` clears them.

    python -m local.twilio_rest --port 3001 [--callee-conversation local/conversations/outbound.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import itertools
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from local.asgi_server import listening_socket
from local.call_simulator import CallConfig, CallReport, place_call
from local.call_simulator.call_updates import CallUpdates
from local.environment import local_environment
from local.twilio_numbers import PhoneNumbers, TwilioApiError
from local.twilio_outbound import (
    ANSWERS,
    MACHINE_DETECTION_MODES,
    OUTBOUND_CONVERSATION,
    Callee,
    amd_verdict,
    conversation_named,
)

TWILIO_REST_PORT = 3001
API_VERSION = "2010-04-01"
ACCOUNT_PATH = f"/{API_VERSION}/Accounts/{{AccountSid}}"
CALL_PATH = f"{ACCOUNT_PATH}/Calls/{{CallSid}}.json"
CALLS_PATH = f"{ACCOUNT_PATH}/Calls.json"
AVAILABLE_PATH = f"{ACCOUNT_PATH}/AvailablePhoneNumbers/{{Country}}/Local.json"
NUMBERS_PATH = f"{ACCOUNT_PATH}/IncomingPhoneNumbers.json"
NUMBER_PATH = f"{ACCOUNT_PATH}/IncomingPhoneNumbers/{{NumberSid}}.json"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_WAIT_S = 120.0
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# How long an update waits for the simulator to take it in before Twilio's answer goes out anyway.
DELIVERY_TIMEOUT_S = 2.0
WS_UNKNOWN_CALL = 4404
# Updates that send a live call to new instructions; Twilio refuses them once the call has ended.
REDIRECTS = ("Twiml", "Url")

Endpoint = Callable[[Request], Awaitable[Response]]
logger = logging.getLogger("voiceline.twilio_rest")


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
    listening: bool = False  # the simulator is taking the updates (events socket, or in-process)
    outbox: asyncio.Queue[tuple[dict[str, str], asyncio.Future[None]]] = field(default_factory=asyncio.Queue)
    # A call placed through Calls.json: what AMD said, and once it is over, the simulator's report of it.
    dialled_here: bool = False
    answered_by: str | None = None
    report: CallReport | None = None
    error: str | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # nothing more will happen to the call

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

    def end(self, status: str = "completed") -> None:
        if self.ended is None:
            self.ended = self.updated = datetime.now(UTC)
            self.status = status
        if not self.dialled_here:  # a call the simulator registered: it keeps its own report
            self.settled.set()

    def release_waiters(self, unacknowledged: Iterable[asyncio.Future[None]] = ()) -> None:
        """The phone is gone: updates queued or unacknowledged need wait for it no longer."""
        waiting = list(unacknowledged)
        while not self.outbox.empty():
            waiting.append(self.outbox.get_nowait()[1])
        for delivered in waiting:
            if not delivered.done():
                delivered.set_result(None)

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
            "duration": duration, "price": None, "price_unit": "USD", "answered_by": self.answered_by,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json",
        }


@dataclass
class Fault:
    """A REST request made to fail or stall: `times` requests whose method and path (its end) match."""

    method: str
    path: str
    status: int | None = None  # None: only the delay, then the request is served
    code: int | None = None
    message: str = "An internal server error has occurred"
    delay_s: float = 0.0
    times: int = 1

    def matches(self, request: Request) -> bool:
        return self.times > 0 and request.method == self.method.upper() and request.url.path.endswith(self.path)


class TwilioRestStandIn:
    """The REST API of one Twilio account: its numbers, and the calls placed on it or by the simulator.

    `owned` are numbers the account has from the start; `callee` is how a dialled number answers
    unless PUT /local/callees says otherwise.
    """

    def __init__(self, account_sid: str, auth_token: str, owned: Iterable[str] = (), callee: Callee | None = None,
                 max_call_seconds: float = 120.0) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.calls: dict[str, LiveCall] = {}
        self.numbers = PhoneNumbers(account_sid, owned)
        self.default_callee = callee or Callee()
        self.callees: dict[str, Callee] = {}
        self.faults: list[Fault] = []
        self._max_call_seconds = max_call_seconds
        self._dialling: set[asyncio.Task[None]] = set()

    def app(self) -> Starlette:
        twilio = self._authenticated
        return Starlette(routes=[
            Route(CALLS_PATH, twilio(self.create_call), methods=["POST"]),
            Route(CALL_PATH, twilio(self.update_call), methods=["POST"]),
            Route(AVAILABLE_PATH, twilio(self.search_available), methods=["GET"]),
            Route(NUMBERS_PATH, twilio(self.list_numbers), methods=["GET"]),
            Route(NUMBERS_PATH, twilio(self.buy_number), methods=["POST"]),
            Route(NUMBER_PATH, twilio(self.get_number), methods=["GET"]),
            Route(NUMBER_PATH, twilio(self.update_number), methods=["POST"]),
            Route(NUMBER_PATH, twilio(self.release_number), methods=["DELETE"]),
            Route("/local/calls", self.register_call, methods=["POST"]),
            Route("/local/calls/{CallSid}", self.call_outcome, methods=["GET"]),
            WebSocketRoute("/local/calls/{CallSid}/events", self.call_events),
            Route("/local/callees/{number}", self.set_callee, methods=["PUT"]),
            Route("/local/callees/{number}", self.reset_callee, methods=["DELETE"]),
            Route("/local/faults", self.add_fault, methods=["POST"]),
            Route("/local/faults", self.clear_faults, methods=["DELETE"]),
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
            fault = next((fault for fault in self.faults if fault.matches(request)), None)
            if fault is not None:
                fault.times -= 1
                await asyncio.sleep(fault.delay_s)
                if fault.status is not None:
                    return twilio_error(fault.status, fault.code or fault.status, fault.message)
            try:
                return await endpoint(request)
            except TwilioApiError as error:
                return twilio_error(error.status, error.code, error.message)

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

    async def create_call(self, request: Request) -> Response:
        """Place a call from one of the account's numbers; the callee picks up in the background."""
        form = await _form(request)
        to, from_number, url = form.get("To", ""), form.get("From", ""), form.get("Url", "")
        if not to:
            raise TwilioApiError(400, 21201, "No 'To' number is specified")
        if not from_number:
            raise TwilioApiError(400, 21213, "No 'From' number is specified")
        if not E164.fullmatch(to):
            raise TwilioApiError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not self.numbers.owns(from_number):
            raise TwilioApiError(400, 21210, f"The source phone number provided, {from_number}, is not yet verified "
                                             "for your account. You may only make calls from phone numbers that "
                                             "you've verified or purchased from Twilio.")
        if not url:
            raise TwilioApiError(400, 21205, "Url parameter is required (the stand-in runs no Twiml or Applications)")
        if form.get("Method", "POST").upper() != "POST":
            raise TwilioApiError(400, 21205, "the stand-in fetches TwiML with POST only")
        machine_detection = form.get("MachineDetection") or None
        if machine_detection is not None and machine_detection not in MACHINE_DETECTION_MODES:
            raise TwilioApiError(400, 21624, f"MachineDetection must be one of {', '.join(MACHINE_DETECTION_MODES)}")
        call = LiveCall("CA" + secrets.token_hex(16), self.account_sid, from_number, to, direction="outbound-api",
                        status="queued", dialled_here=True)
        self.calls[call.sid] = call
        task = asyncio.create_task(self._ring(call, url, form.get("StatusCallback") or None, machine_detection))
        self._dialling.add(task)
        task.add_done_callback(self._dialling.discard)
        return JSONResponse(call.resource(), 201)

    async def search_available(self, request: Request) -> Response:
        query = request.query_params
        found = self.numbers.search(request.path_params["Country"], query.get("AreaCode"), query.get("Contains"),
                                    _page_size(query.get("PageSize")))
        uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return JSONResponse({"uri": uri, "available_phone_numbers": [number.resource() for number in found]})

    async def list_numbers(self, request: Request) -> Response:
        query = request.query_params
        found = self.numbers.owned(query.get("PhoneNumber"), query.get("FriendlyName"))
        page_size = _page_size(query.get("PageSize"))
        page = int(query["Page"]) if query.get("Page", "").isdigit() else 0
        start = page * page_size
        shown = found[start:start + page_size]

        def page_uri(number: int) -> str:
            filters = "".join(f"&{name}={query[name]}" for name in ("PhoneNumber", "FriendlyName") if query.get(name))
            return f"{request.url.path}?PageSize={page_size}&Page={number}{filters}"

        return JSONResponse({
            "incoming_phone_numbers": [number.resource() for number in shown],
            "page": page, "page_size": page_size, "start": start, "end": start + max(len(shown) - 1, 0),
            "uri": page_uri(page), "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if start + page_size < len(found) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        })

    async def buy_number(self, request: Request) -> Response:
        return JSONResponse(self.numbers.buy(await _form(request)).resource(), 201)

    async def get_number(self, request: Request) -> Response:
        return JSONResponse(self._number(request).resource())

    async def update_number(self, request: Request) -> Response:
        number = self._number(request)
        number.update(await _form(request))
        return JSONResponse(number.resource())

    async def release_number(self, request: Request) -> Response:
        self.numbers.release(request.path_params["NumberSid"])
        return Response(status_code=204)

    def _number(self, request: Request) -> Any:
        number = self.numbers.get(request.path_params["NumberSid"])
        if number is None:
            raise TwilioApiError(404, 20404, f"The requested resource {request.url.path} was not found")
        return number

    # ---- Twilio placing a call: the simulator is the phone that rings ---------------------------

    async def _ring(self, call: LiveCall, voice_url: str, status_callback: str | None,
                    machine_detection: str | None) -> None:
        callee = self.callees.get(call.to_number, self.default_callee)
        call.answered_by = amd_verdict(callee.answers, machine_detection)
        updates = CallUpdates(call.from_number)
        call.listening = True
        deliverer = asyncio.create_task(self._deliver(call, updates))
        call.status = "in-progress" if callee.unanswered is None else "ringing"
        config = CallConfig(
            gateway_url="", to_number=call.to_number, from_number=call.from_number, call_sid=call.sid,
            conversation=callee.conversation, audio_dir=callee.audio_dir, account_sid=self.account_sid,
            auth_token=self._auth_token, on_line=lambda line: logger.info("%s %s", call.sid, line),
            max_call_seconds=self._max_call_seconds, direction="outbound-api", voice_url=voice_url,
            status_callback_url=status_callback, answered_by=call.answered_by, unanswered=callee.unanswered)
        try:
            call.report = await place_call(config, updates)
            if call.report.error:
                call.error = call.report.error
        except Exception as error:  # the webhook's host unreachable, a bad callee script…: Twilio's call fails
            logger.exception("outbound call %s failed", call.sid)
            call.error = repr(error)
        finally:
            deliverer.cancel()
            await asyncio.gather(deliverer, return_exceptions=True)
            call.listening = False
            call.release_waiters()
            failed = call.report is None
            call.end("failed" if failed else callee.unanswered or "completed")
            call.settled.set()

    @staticmethod
    async def _deliver(call: LiveCall, updates: CallUpdates) -> None:
        """Hand each update to the simulator in-process; it takes it in at once."""
        while True:
            parameters, delivered = await call.outbox.get()
            updates.take(parameters)
            if not delivered.done():
                delivered.set_result(None)

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
            call.release_waiters(unacknowledged.values())  # the call is over: nobody need wait for the phone

    async def call_outcome(self, request: Request) -> Response:
        """What became of a call: its resource, its updates and, for one placed here, the simulator's report.

        `?wait=S` waits up to S seconds for the call to be over first.
        """
        call = self.calls.get(request.path_params["CallSid"])
        if call is None:
            return JSONResponse({"message": "no such call"}, 404)
        try:
            wait_s = min(float(request.query_params.get("wait", "0")), MAX_WAIT_S)
        except ValueError:
            return JSONResponse({"message": "wait must be a number of seconds"}, 400)
        if wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.settled.wait(), wait_s)
        body = {"call": call.resource(), "settled": call.settled.is_set(), "updates": call.updates,
                "report": dataclasses.asdict(call.report) if call.report is not None else None, "error": call.error}
        return Response(json.dumps(body, default=str), media_type="application/json")

    async def set_callee(self, request: Request) -> Response:
        """How a number answers the calls placed to it: {"answers": …, "conversation": "<file in conversations>"}."""
        try:
            body = await request.json()
            answers = body.get("answers", self.default_callee.answers)
            if answers not in ANSWERS:
                raise ValueError(f"answers must be one of {', '.join(ANSWERS)}")
            conversation = (conversation_named(body["conversation"]) if body.get("conversation")
                            else self.default_callee.conversation)
        except (ValueError, AttributeError) as error:
            return JSONResponse({"message": str(error)}, 400)
        callee = dataclasses.replace(self.default_callee, answers=answers, conversation=conversation)
        self.callees[request.path_params["number"]] = callee
        return JSONResponse({"number": request.path_params["number"], "answers": answers,
                             "conversation": conversation.name})

    async def reset_callee(self, request: Request) -> Response:
        self.callees.pop(request.path_params["number"], None)
        return Response(status_code=204)

    async def add_fault(self, request: Request) -> Response:
        try:
            fault = Fault(**await request.json())
        except (TypeError, ValueError) as error:
            return JSONResponse({"message": f"not a fault: {error}"}, 400)
        self.faults.append(fault)
        return JSONResponse(dataclasses.asdict(fault), 201)

    async def clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(status_code=204)

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


def _page_size(raw: str | None) -> int:
    return min(int(raw), MAX_PAGE_SIZE) if raw and raw.isdigit() and int(raw) > 0 else DEFAULT_PAGE_SIZE


def _acknowledged_id(text: str | None) -> int | None:
    """The update id of an `{"event": "ack", "id": n}` from the simulator; None for anything else."""
    try:
        message = json.loads(text or "")
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("event") == "ack" and isinstance(message.get("id"), int):
        return message["id"]
    return None


def main(argv: list[str] | None = None) -> None:
    from local.seed import DEMO_NUMBER

    parser = argparse.ArgumentParser(description="Answer Twilio REST calls locally for the call simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=TWILIO_REST_PORT)
    parser.add_argument("--owned-number", action="append", dest="owned",
                        help=f"a number the account owns from the start (repeatable; default {DEMO_NUMBER})")
    parser.add_argument("--callee-conversation", type=Path, default=OUTBOUND_CONVERSATION,
                        help="what the person answering an outbound call says")
    parser.add_argument("--callee-answers", choices=ANSWERS, default="human",
                        help="who picks up an outbound call, as answering machine detection tells it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    env = local_environment()
    stand_in = TwilioRestStandIn(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"],
                                 owned=args.owned if args.owned is not None else [DEMO_NUMBER],
                                 callee=Callee(args.callee_answers, args.callee_conversation))
    config = uvicorn.Config(stand_in.app(), lifespan="off", proxy_headers=False)
    uvicorn.Server(config).run(sockets=[listening_socket(args.host, args.port)])


if __name__ == "__main__":
    main()
