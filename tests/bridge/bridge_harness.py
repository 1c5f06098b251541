"""The bridge in-process for tests: served by uvicorn on 127.0.0.1, with just enough of Twilio and of AWS around it.

Not a test module: test_call_session.py and test_call_tools.py share it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge.twilio_protocol import MAX_FRAME_BYTES
from local.asgi_server import serving
from local.call_simulator.call_updates import CallUpdates, registered_call
from tests.conftest import TwilioSigner
from voiceline import agents, calls, stream_token
from voiceline.models import Agent, Call

TENANT, AGENT = "tenant-a", "agent-a"
CALLER = "+15551230000"
BUSINESS = "+15550100"
SILENCE_FRAME = base64.b64encode(b"\xff" * 160).decode()


@asynccontextmanager
async def running_bridge(openai_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The real bridge app; yields its media-stream URL."""
    monkeypatch.setenv("OPENAI_REALTIME_URL", openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("EVENT_FLUSH_INTERVAL_S", "0.05")
    from bridge.app import app

    async with serving(app, lifespan="on", ws_max_size=MAX_FRAME_BYTES) as base_url:
        yield base_url.replace("http://", "ws://") + "/media-stream"


def health_url(media_url: str) -> str:
    """The same bridge's `GET /health`, from the media-stream URL that `running_bridge` yields."""
    return media_url.replace("ws://", "http://").replace("/media-stream", "/health")


def seed_call(call_sid: str, **agent_fields: Any) -> None:
    """The agent (Ava at Acme, any field overridden) and a ringing Call from CALLER, as the webhook leaves them."""
    fields = {"tenant_id": TENANT, "name": "Ava", "business_name": "Acme", "instructions": "Help {caller_number}",
              "greeting": "Hello from {business_name}", "max_duration_s": 60, "silence_timeout_s": 60}
    Agent(AGENT, **{**fields, **agent_fields}).save()
    calls.create_call(call_sid, TENANT, AGENT, CALLER, BUSINESS)


def vouched_facts() -> stream_token.CallFacts:
    """The facts the voice webhook signs for a call seeded by `seed_call`, the agent as it is stored now."""
    return stream_token.CallFacts(agents.fingerprint(Agent.get(AGENT)), CALLER, BUSINESS, "inbound",
                                  has_variables=False)


async def until(condition: Callable[[], bool], timeout_s: float = 15, what: str = "the condition") -> None:
    """Wait, on the event loop, for what another task or thread brings about."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.02)


class TwilioLeg:
    """Just enough of Twilio: a signed socket, `start`, real-time silence, and marks echoed.

    Marks are echoed at once, as if the audio played instantly, unless `hold_marks` is set: then
    they wait for `release_marks()`, as on a phone still playing the agent's words.
    """

    def __init__(self, socket: ClientConnection, call_sid: str, hold_marks: bool) -> None:
        self.socket = socket
        self.call_sid = call_sid
        self.received: list[dict[str, Any]] = []
        self.first_media = asyncio.Event()
        self.marks_echoed = 0
        self.frames_sent = 0  # caller audio frames, for counting what the bridge relayed
        self._hung_up = False  # Twilio sends no media after `stop`; neither do we
        self._hold_marks = hold_marks
        self._held: list[dict[str, Any]] = []

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, signer: TwilioSigner, call_sid: str, agent_id: str = AGENT,
                   tenant_id: str = TENANT, hold_marks: bool = False,
                   facts: stream_token.CallFacts | None = None) -> AsyncIterator[TwilioLeg]:
        """`facts`: sent signed as `callFacts`, as the voice webhook does; without them the bridge reads all."""
        parameters = stream_token.stream_parameters(os.environ["STREAM_TOKEN_KEY"].encode(), call_sid, agent_id,
                                                    tenant_id, facts)
        async with connect(url, additional_headers={"X-Twilio-Signature": signer.sign(url)}) as socket:
            leg = cls(socket, call_sid, hold_marks)
            await socket.send(json.dumps({"event": "start", "streamSid": "MZ1", "start": {
                "streamSid": "MZ1", "callSid": call_sid, "accountSid": "AC1", "customParameters": parameters}}))
            yield leg

    async def run_until_closed(self, timeout_s: float) -> int | None:
        """Send silence every 20 ms and listen, until the bridge closes the socket."""
        sender = asyncio.create_task(self._send_silence())
        try:
            await asyncio.wait_for(self._listen(), timeout_s)
        finally:
            sender.cancel()
        return self.socket.close_code

    async def hang_up(self) -> None:
        self._hung_up = True
        await self.socket.send(json.dumps({"event": "stop", "stop": {"callSid": self.call_sid}}))

    async def release_marks(self, count: int | None = None) -> None:
        """Echo the held marks, as the phone plays that audio; with `count`, only the first few, holding on."""
        held, self._held = (self._held, []) if count is None else (self._held[:count], self._held[count:])
        for mark in held:
            await self._echo(mark)
        self._hold_marks = count is not None

    @property
    def marks_held(self) -> int:
        return len(self._held)

    async def _send_silence(self) -> None:
        """Every 20 ms until the caller hangs up or the bridge closes the socket."""
        with contextlib.suppress(ConnectionClosed):
            while not self._hung_up:
                await self.socket.send(json.dumps({"event": "media", "media": {"payload": SILENCE_FRAME}}))
                self.frames_sent += 1
                await asyncio.sleep(0.02)

    async def _listen(self) -> None:
        try:
            async for raw in self.socket:
                message = json.loads(raw)
                self.received.append(message)
                if message["event"] == "media":
                    self.first_media.set()
                elif message["event"] == "mark" and self._hold_marks:
                    self._held.append(message["mark"])
                elif message["event"] == "mark":
                    await self._echo(message["mark"])
        except ConnectionClosed:
            pass

    async def _echo(self, mark: dict[str, Any]) -> None:
        await self.socket.send(json.dumps({"event": "mark", "mark": mark}))
        self.marks_echoed += 1


async def ended_call(call_sid: str) -> Any:
    """The finalised Call; the bridge writes it before the uvicorn task completes its connection."""
    for _ in range(200):
        call = await asyncio.to_thread(calls.get_call, call_sid)
        if call.end_reason:
            return call
        await asyncio.sleep(0.02)
    raise AssertionError("call never finalised")


@asynccontextmanager
async def known_to_twilio(api_url: str, call_sid: str) -> AsyncIterator[CallUpdates]:
    """Register the call with the Twilio REST stand-in, as the simulator does, and hear its updates."""
    call = Call.get(call_sid)
    parameters = {"CallSid": call_sid, "AccountSid": os.environ["TWILIO_ACCOUNT_SID"], "From": call.from_number,
                  "To": call.to_number, "Direction": "inbound"}
    async with httpx.AsyncClient(timeout=5) as http, registered_call(http, api_url, parameters, 5) as updates:
        yield updates
