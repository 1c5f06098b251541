"""The scripted model under load (`make bench`): a cheap, stamped stand-in for many Realtime sessions at once.

It speaks the few GA events the bridge acts on, and measures instead of scripting:
- every caller frame's stamp is read on arrival (caller → model relay latency, frames received; apart, the
  latency of frames the harness flagged STEADY);
- it greets on `response.create` and answers each caller turn (a frame flagged TURN_END) with
  REPLY_MS of audio in real-time DELTA_MS deltas, each stamped with its send time; a response's
  first delta also carries when the model was asked, so the harness can subtract the model's own
  time from the latency the caller sees;
- each turn's words come as the API sends them, the caller's transcript once its turn ends and the
  agent's before its response is done, so the bridge records a call's transcript as it would a real one;
- on the caller's BYE it stops talking, sends one GOODBYE delta and, when the bridge closes the
  session, writes one JSON line of figures per session to the stats file.
Started by `python -m local.scripted_model` when LOAD_MODEL_STATS names that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from local.load_bench.stamps import (
    BYE,
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

STATS_ENV = "LOAD_MODEL_STATS"
DELTA_MS = 100
GREETING_MS = 2000
REPLY_MS = 2000
THINK_MS = 0  # the model's own time to first audio; the harness subtracts whatever it is
# About a second of a caller's words, and two seconds of the agent's (some 150 words a minute)
CALLER_WORDS = "Yes, I would like to book a visit for next Tuesday morning, please."
AGENT_WORDS = ("Of course. I have Tuesday at nine or at half past ten in the morning. Which of those "
               "would suit you better?")
_BYTES_PER_MS = 8


class LoadSession:
    """One Realtime session: reads stamps, plays stamped replies, counts both directions."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        self._audio = StampedAudio(DELTA_MS * _BYTES_PER_MS)
        self.call = -1  # learned from the first caller frame
        self.frames = 0
        self.latency_us: list[int] = []
        self.steady_latency_us: list[int] = []
        self.deltas_sent = 0
        self._speaking = False
        self._leaving = False  # the caller said BYE: the response playing stops before its next delta
        self._responses = 0
        self._reply: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await self._send({"type": "session.created", "session": {}})
        try:
            async for message in self._connection:
                await self._receive(message)
        except ConnectionClosed:
            pass
        finally:
            if self._reply is not None:
                self._reply.cancel()
                await asyncio.gather(self._reply, return_exceptions=True)

    def figures(self) -> dict[str, Any]:
        return {"call": self.call, "frames": self.frames, "deltas_sent": self.deltas_sent,
                "latency_us": self.latency_us, "steady_latency_us": self.steady_latency_us}

    async def _receive(self, message: str | bytes) -> None:
        arrived = time.monotonic_ns()
        event = orjson.loads(message)
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            await self._on_audio(event.get("audio", ""), arrived)
        elif kind == "response.create":
            self._answer(arrived)
        elif kind == "session.update":
            await self._send({"type": "session.updated", "session": event.get("session", {})})

    async def _on_audio(self, audio: str, arrived: int) -> None:
        stamp = read_stamp(audio)
        if stamp is None:
            return
        self.call = stamp.call
        self.frames += 1
        if not stamp.flags & EARLY:
            self.latency_us.append((arrived - stamp.sent_ns) // 1000)
            if stamp.flags & STEADY:
                self.steady_latency_us.append(self.latency_us[-1])
        if stamp.flags & BYE:
            await self._say_goodbye()
        elif stamp.flags & SPEECH and not self._speaking:
            self._speaking = True
            await self._send({"type": "input_audio_buffer.speech_started", "item_id": f"in{stamp.sequence}"})
        if stamp.flags & TURN_END:
            self._speaking = False
            await self._send({"type": "input_audio_buffer.speech_stopped", "item_id": f"in{stamp.sequence}"})
            self._answer(arrived)
            await self._send({"type": "conversation.item.input_audio_transcription.completed",
                              "item_id": f"in{stamp.sequence}", "content_index": 0, "transcript": CALLER_WORDS})

    def _answer(self, asked_ns: int) -> None:
        if self._reply is not None and not self._reply.done():
            return  # one response at a time, as the API allows
        self._responses += 1
        duration_ms = GREETING_MS if self._responses == 1 else REPLY_MS
        self._reply = asyncio.create_task(self._play(f"r{self._responses}", duration_ms, asked_ns))

    async def _play(self, response_id: str, duration_ms: int, asked_ns: int) -> None:
        """Real-time deltas: delta n leaves at start + n·DELTA_MS, so lateness never accumulates."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(THINK_MS / 1000)
        await self._send({"type": "response.created", "response": {"id": response_id, "status": "in_progress"}})
        count = max(1, duration_ms // DELTA_MS)
        started = loop.time()
        for index in range(count):
            delay = started + index * DELTA_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._leaving:
                break
            flags = (FIRST if index == 0 else 0) | (LAST if index == count - 1 else 0)
            await self._delta(response_id, flags, asked_ns if index == 0 else 0)
        await self._send({"type": "response.output_audio_transcript.done", "response_id": response_id,
                          "item_id": f"item_{response_id}", "output_index": 0, "content_index": 0,
                          "transcript": AGENT_WORDS})
        await self._send({"type": "response.done",
                          "response": {"id": response_id, "status": "completed", "output": []}})

    async def _say_goodbye(self) -> None:
        # Not cancelled: a delta cut off mid-send could reach the caller uncounted, or be counted unsent.
        self._leaving = True
        if self._reply is not None:
            await self._reply
        await self._delta("bye", GOODBYE)

    async def _delta(self, response_id: str, flags: int, asked_ns: int = 0) -> None:
        self.deltas_sent += 1
        payload = self._audio.payload(max(self.call, 0), self.deltas_sent, time.monotonic_ns(), flags, asked_ns)
        await self._send({"type": "response.output_audio.delta", "response_id": response_id,
                          "item_id": f"item_{response_id}", "output_index": 0, "content_index": 0,
                          "delta": payload})

    async def _send(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(orjson.dumps(event), text=True)


def _health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/health":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def serve_load(host: str, port: int, stats_path: Path) -> None:
    """Serve load sessions until cancelled; each closed session appends its figures to `stats_path`."""
    with stats_path.open("a", buffering=1) as stats:
        async def run_session(connection: ServerConnection) -> None:
            session = LoadSession(connection)
            try:
                await session.run()
            finally:
                stats.write(json.dumps(session.figures()) + "\n")

        async with serve(run_session, host, port, process_request=_health, compression=None):
            await asyncio.Future()
