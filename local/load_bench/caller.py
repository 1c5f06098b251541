"""One light Twilio leg for the load benchmark: a signed socket, `start`, stamped 20 ms frames, marks echoed.

Much lighter than the call simulator (no script, no WAV, no playback clock), so one process can
hold 150 calls. The caller listens until the agent's response ends (its LAST delta), pauses,
speaks for SPEAK_MS (the final frame flagged TURN_END, which the model answers), and so on until
its time is up; then it sends BYE, waits for the model's GOODBYE (everything the model sent is
then in), and hangs up with `stop`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import orjson
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from local.load_bench.stamps import (
    BYE,
    CALLER_FRAME_BYTES,
    EARLY,
    FIRST,
    GOODBYE,
    LAST,
    SPEECH,
    STEADY,
    TURN_END,
    StampedAudio,
    read_stamp,
)

FRAME_S = 0.020
PAUSE_MS = 200  # between the agent's last audio and the caller's next words
SPEAK_MS = 1000
GOODBYE_TIMEOUT_S = 10.0
OPEN_TIMEOUT_S = 15.0


@dataclass
class CallResult:
    """What one caller measured; latencies in microseconds, on the machine-wide monotonic clock."""

    call: int
    call_sid: str = ""
    frames_sent: int = 0
    deltas_received: int = 0
    model_to_caller_us: list[int] = field(default_factory=list)
    steady_model_to_caller_us: list[int] = field(default_factory=list)  # deltas sent in the steady window
    greeting_overhead_us: int | None = None  # first audio heard after `start`, less the model's own time
    turn_overhead_us: list[int] = field(default_factory=list)  # same, from the end of each caller turn
    steady_turn_overhead_us: list[int] = field(default_factory=list)  # for turns that ended in the steady window
    error: str | None = None


class SteadyWindow:
    """While every call of a run is up: from `settle_s` after the last greeting heard to the first caller's BYE.

    Set-up is bound by the local DynamoDB (moto, on the harness's core), not by the bridge, so the window opens
    when the calls are actually up, not when they were planned to be. Audio sent inside it is the relay alone.
    """

    def __init__(self, calls: int, settle_s: float) -> None:
        self._waiting_for = calls
        self._settle_ns = int(settle_s * 1e9)
        self.opens_ns: int | None = None
        self.closes_ns: int | None = None
        self.opened = asyncio.Event()

    def greeted(self, now_ns: int) -> None:
        self._waiting_for -= 1
        if self._waiting_for == 0:
            self.opens_ns = now_ns + self._settle_ns
            self.opened.set()

    def leaving(self, now_ns: int) -> None:
        if self.closes_ns is None:
            self.closes_ns = now_ns

    def holds(self, sent_ns: int) -> bool:
        return (self.opens_ns is not None and self.opens_ns <= sent_ns
                and (self.closes_ns is None or sent_ns < self.closes_ns))


@dataclass(frozen=True)
class Dial:
    """Where and as whom a caller connects."""

    url: str
    auth_token: str
    call_sid: str
    parameters: dict[str, str]


class LoadCaller:
    def __init__(self, call: int, dial: Dial, seconds: float, steady: SteadyWindow) -> None:
        self.result = CallResult(call, dial.call_sid)
        self._dial = dial
        self._seconds = seconds
        self._steady = steady
        self._stream_sid = f"MZ{call:032x}"
        self._audio = StampedAudio(CALLER_FRAME_BYTES)
        self._sequence = 0
        self._start_ns = 0
        self._turn_end_ns = 0
        self._greeted = False
        self._agent_done_at: float | None = None  # loop time of the agent's last delta; None while it speaks
        self._goodbye = asyncio.Event()

    async def run(self) -> CallResult:
        signature = RequestValidator(self._dial.auth_token).compute_signature(self._dial.url, {})
        try:
            # Twilio offers no permessage-deflate; neither does this leg.
            async with connect(self._dial.url, additional_headers={"X-Twilio-Signature": signature},
                               compression=None, open_timeout=OPEN_TIMEOUT_S, close_timeout=5) as socket:
                await self._talk(socket)
        except (OSError, TimeoutError, ConnectionClosed) as error:
            self.result.error = repr(error)
        return self.result

    async def _talk(self, socket: ClientConnection) -> None:
        await socket.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        self._start_ns = time.monotonic_ns()
        await socket.send(self._message("start", {
            "streamSid": self._stream_sid, "callSid": self._dial.call_sid, "accountSid": "AC" + "0" * 32,
            "tracks": ["inbound"], "customParameters": self._dial.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}))
        listener = asyncio.create_task(self._listen(socket))
        try:
            await self._send_frames(socket)
            try:
                await asyncio.wait_for(self._goodbye.wait(), GOODBYE_TIMEOUT_S)
            except TimeoutError:
                self.result.error = "no GOODBYE from the model: frames may be lost"
            await socket.send(self._message("stop", {"callSid": self._dial.call_sid}))
        finally:
            listener.cancel()

    async def _send_frames(self, socket: ClientConnection) -> None:
        """Frame n leaves at t0 + n·20 ms, so lateness never accumulates; the last one says BYE."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        frames = int(self._seconds / FRAME_S)
        speech_left = 0
        for index in range(frames):
            delay = started + index * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            flags = 0 if self._greeted else EARLY
            if speech_left == 0 and self._agent_done_at is not None and loop.time() - self._agent_done_at >= \
                    PAUSE_MS / 1000:
                self._agent_done_at, speech_left = None, SPEAK_MS // 20
            if speech_left:
                speech_left -= 1
                flags |= SPEECH | (TURN_END if speech_left == 0 else 0)
            if index == frames - 1:
                flags |= BYE
            await self._send_frame(socket, flags)

    async def _send_frame(self, socket: ClientConnection, flags: int) -> None:
        self._sequence += 1
        sent_ns = time.monotonic_ns()
        if flags & BYE:
            self._steady.leaving(sent_ns)
        elif self._steady.holds(sent_ns):
            flags |= STEADY
        if flags & TURN_END:
            self._turn_end_ns = sent_ns
        payload = self._audio.payload(self.result.call, self._sequence, sent_ns, flags)
        await socket.send(f'{{"event":"media","sequenceNumber":"{self._sequence}","streamSid":"{self._stream_sid}",'
                          f'"media":{{"track":"inbound","payload":"{payload}"}}}}')
        self.result.frames_sent += 1

    async def _listen(self, socket: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for raw in socket:
                now_ns = time.monotonic_ns()
                message = orjson.loads(raw)
                event = message.get("event")
                if event == "mark":
                    # Echoed at once, as if the audio played instantly: the leg never holds the agent back.
                    await socket.send(self._message("mark", message["mark"]))
                elif event == "media":
                    self._on_agent_audio(message["media"]["payload"], now_ns, loop.time())
        except ConnectionClosed:
            pass

    def _on_agent_audio(self, payload: str, now_ns: int, now: float) -> None:
        stamp = read_stamp(payload)
        if stamp is None:
            return
        self.result.deltas_received += 1
        self.result.model_to_caller_us.append((now_ns - stamp.sent_ns) // 1000)
        if self._steady.holds(stamp.sent_ns):
            self.result.steady_model_to_caller_us.append(self.result.model_to_caller_us[-1])
        if stamp.flags & FIRST:
            model_own_ns = stamp.sent_ns - stamp.trigger_ns
            if not self._greeted:
                self._greeted = True
                self._steady.greeted(now_ns)
                self.result.greeting_overhead_us = (now_ns - self._start_ns - model_own_ns) // 1000
            elif self._turn_end_ns:
                self.result.turn_overhead_us.append((now_ns - self._turn_end_ns - model_own_ns) // 1000)
                if self._steady.holds(self._turn_end_ns):
                    self.result.steady_turn_overhead_us.append(self.result.turn_overhead_us[-1])
                self._turn_end_ns = 0
        if stamp.flags & LAST:
            self._agent_done_at = now
        if stamp.flags & GOODBYE:
            self._goodbye.set()

    def _message(self, event: str, body: dict[str, object]) -> str:
        self._sequence += 1
        return json.dumps({"event": event, "sequenceNumber": str(self._sequence), "streamSid": self._stream_sid,
                           event: body})
