"""The call as Twilio's REST API knows it: registered with the local stand-in, and the agent's updates to it.

The stand-in (local/twilio_rest.py) answers the bridge's `POST …/Calls/{CallSid}.json` and passes
each update on over a WebSocket. The simulator acknowledges an update once it has taken it in, so
by the time the bridge has Twilio's answer, the phone knows how its call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from local.call_simulator.report import EndedBy
from local.call_simulator.twiml import InvalidTwiML, parse_twiml


@dataclass(frozen=True)
class CallEnd:
    """How an update ends the media stream, as Twilio carries it out."""

    ended_by: EndedBy
    transferred_to: str | None = None
    transfer_caller_id: str | None = None
    error: str | None = None  # TwiML Twilio could not run, or could run but the simulator does not


def call_end(parameters: dict[str, str], caller_number: str) -> CallEnd | None:
    """What an update does to a call in a <Connect><Stream>; None when it leaves the stream running.

    Status=completed hangs up. New TwiML stops the stream and runs instead: a <Dial> transfers the
    caller (shown the caller's own number unless callerId says otherwise); TwiML without one ends
    the call once it has run. Url redirects are not simulated, and Status=canceled does nothing to
    a call in progress.
    """
    if parameters.get("Status") == "completed":
        return CallEnd("agent_hung_up")
    twiml = parameters.get("Twiml")
    if twiml is None:
        return None
    try:
        answer = parse_twiml(twiml)
    except InvalidTwiML as error:  # a real caller would hear "an application error has occurred"
        return CallEnd("agent_hung_up", error=f"update TwiML: {error}")
    if answer.dial is not None:
        return CallEnd("transferred", answer.dial.number, answer.dial.caller_id or caller_number)
    if answer.stream is not None:
        return CallEnd("agent_hung_up", error="update TwiML opens a new <Stream>, which the simulator does not follow")
    return CallEnd("agent_hung_up")


class CallUpdates:
    """The updates the stand-in passes on for one call; `end` is the first that ends its stream."""

    def __init__(self, caller_number: str) -> None:
        self._caller_number = caller_number
        self.end: CallEnd | None = None

    def take(self, parameters: dict[str, str]) -> None:
        """One update of the call, as Twilio carries it out; only the first that ends the stream counts."""
        if self.end is None:
            self.end = call_end(parameters, self._caller_number)

    async def listen(self, socket: ClientConnection) -> None:
        """Take in each update, then acknowledge it, until the socket closes."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in socket:
                message: Any = json.loads(raw)
                self.take(message["parameters"])
                await socket.send(json.dumps({"event": "ack", "id": message["id"]}))


@contextlib.asynccontextmanager
async def registered_call(http: httpx.AsyncClient, api_url: str, parameters: dict[str, str],
                          stream_timeout_s: float) -> AsyncIterator[CallUpdates]:
    """Tell the stand-in about the call and hear its updates; leaving ends the call there too.

    A stand-in that cannot be reached raises httpx.HTTPError, before the call is placed.
    """
    api_url = api_url.rstrip("/")
    response = await http.post(f"{api_url}/local/calls", data=parameters)
    response.raise_for_status()
    events_url = api_url.replace("http", "ws", 1) + f"/local/calls/{parameters['CallSid']}/events"
    updates = CallUpdates(parameters["From"])
    async with connect(events_url, open_timeout=stream_timeout_s, close_timeout=stream_timeout_s) as socket:
        listener = asyncio.create_task(updates.listen(socket))
        try:
            yield updates
        finally:
            await socket.close()
            await listener
