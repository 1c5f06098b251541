"""The phone's WebSocket leg: caller audio out on a 20 ms clock; agent audio, marks and clears in."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from local.call_simulator.call_updates import CallUpdates
from local.call_simulator.config import CallConfig
from local.call_simulator.playback import PhonePlayback
from local.call_simulator.report import OUTCOMES, CallReport, EndedBy
from local.call_simulator.sids import new_sid
from local.call_simulator.stream_messages import PhoneMessages
from local.call_simulator.turn_taking import CallerTurnTaking
from local.call_simulator.twiml import StreamInstruction
from local.call_simulator.wav import StereoRecording
from local.mulaw import FRAME_BYTES, ms

FRAME_MS = ms(FRAME_BYTES)

Handler = Callable[[ClientConnection, dict[str, Any]], Awaitable[bool]]


class MediaStreamLeg:
    """One bidirectional media stream, run the way Twilio runs a <Connect><Stream>.

    Two tasks share the socket. The clock sends a caller frame every 20 ms (frame n is due at
    t0 + n·20 ms, so lateness never accumulates) and plays the agent's audio on the same beat.
    The listener queues the bridge's audio and marks, and applies its clears at once. When the
    agent updates the call through Twilio's REST API, the clock stops the stream as Twilio would.
    """

    def __init__(self, config: CallConfig, stream: StreamInstruction, report: CallReport,
                 caller: CallerTurnTaking, recording: StereoRecording, updates: CallUpdates | None = None) -> None:
        self._config = config
        self._stream = stream
        self._report = report
        self._caller = caller
        self._recording = recording
        self._updates = updates
        self._playback = PhonePlayback()
        self._messages = PhoneMessages(config.account_sid, report.call_sid, new_sid("MZ"))
        self._sent_audio = hashlib.sha256()
        self._t0 = 0.0
        self._socket_closed = False
        self._handlers: dict[str, Handler] = {"media": self._on_media, "mark": self._on_mark,
                                              "clear": self._on_clear}

    async def run(self) -> None:
        """Stream until the script ends, the agent ends the call, the time runs out or the bridge hangs up."""
        report = self._report
        # Twilio signs the handshake over the stream URL with no parameters.
        signature = RequestValidator(self._config.auth_token).compute_signature(self._stream.url, {})
        try:
            socket = await connect(self._stream.url, additional_headers={"X-Twilio-Signature": signature},
                                   open_timeout=self._config.stream_timeout_s,
                                   close_timeout=self._config.stream_timeout_s)
        except (OSError, TimeoutError, WebSocketException) as error:
            report.outcome, report.error = "failed", f"media stream did not open: {error!r}"
            return
        report.stream_sid = self._messages.stream_sid
        async with socket:
            report.ended_by = await self._stream_call(socket)
        report.outcome = "failed" if report.error else OUTCOMES[report.ended_by]
        report.close_code = socket.close_code
        report.sent_audio_sha256 = self._sent_audio.hexdigest()
        report.agent_audio_received_ms = ms(self._playback.received_bytes)
        report.agent_audio_played_ms = ms(self._playback.played_bytes)
        report.agent_audio_cleared_ms = ms(self._playback.cleared_bytes)

    async def _stream_call(self, socket: ClientConnection) -> EndedBy:
        try:
            await socket.send(PhoneMessages.connected())
            await socket.send(self._messages.start(self._stream.parameters))
        except ConnectionClosed:
            return "stream_closed"
        self._t0 = asyncio.get_running_loop().time()
        listener = asyncio.create_task(self._listen(socket))
        try:
            ended_by = await self._talk(socket)
            if ended_by != "stream_closed":
                await self._hang_up(socket)  # Twilio ends a stream with `stop` however the call ends
            await listener  # drains what the bridge sent before the close
        finally:
            listener.cancel()
        return ended_by

    async def _talk(self, socket: ClientConnection) -> EndedBy:
        """The clock: one caller frame and one frame of agent playback per 20 ms."""
        loop = asyncio.get_running_loop()
        max_ms = self._config.max_call_seconds * 1000
        frame = 0
        try:
            while True:
                delay = self._t0 + frame * FRAME_MS / 1000 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._socket_closed:
                    return self._closed_by_bridge()
                if (ended_by := self._agent_ended()) is not None:
                    return ended_by
                now_ms = frame * FRAME_MS
                if now_ms >= max_ms:
                    return "max_duration"
                agent_audio, played_marks = self._playback.tick()
                for name in played_marks:
                    await self._echo_mark(socket, name)
                greeting_was_finished = self._caller.greeting_finished
                self._caller.hear(now_ms, len(agent_audio))
                if self._caller.greeting_finished and not greeting_was_finished:
                    await self._send_malformed_frames(socket)
                if self._caller.finished:
                    return "caller_hung_up"
                caller_audio = self._caller.next_frame(now_ms)
                frame += 1
                await socket.send(self._messages.media(frame, now_ms, caller_audio))
                self._sent_audio.update(caller_audio)
                self._report.sent_audio_bytes += len(caller_audio)
                self._recording.add(caller_audio, agent_audio)
        except ConnectionClosed:
            return self._closed_by_bridge()

    def _agent_ended(self) -> EndedBy | None:
        """The agent's REST update that ends the call, if one has come: the remaining script is skipped."""
        end = self._updates.end if self._updates is not None else None
        if end is None:
            return None
        report = self._report
        report.transferred_to, report.transfer_caller_id, report.error = \
            end.transferred_to, end.transfer_caller_id, end.error
        if end.transferred_to is not None:
            self._config.on_line(f"agent: ⇢ transferred to {end.transferred_to} (caller ID {end.transfer_caller_id})")
        else:
            self._config.on_line("agent: ☎ hung up")
        return end.ended_by

    def _closed_by_bridge(self) -> EndedBy:
        # The bridge may close the stream as soon as Twilio has answered its update: the update says why.
        return self._agent_ended() or "stream_closed"

    async def _hang_up(self, socket: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await socket.send(self._messages.stop())
        await socket.close()

    async def _listen(self, socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                if not await self._on_bridge_message(socket, raw):
                    self._report.bridge_frames_ignored += 1
        except ConnectionClosed:
            pass
        finally:
            self._socket_closed = True

    async def _on_bridge_message(self, socket: ClientConnection, raw: str | bytes) -> bool:
        """Dispatch one message from the bridge; False when Twilio would reject it."""
        if isinstance(raw, bytes):
            return False
        try:
            message = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("streamSid") != self._messages.stream_sid:
            return False
        handler = self._handlers.get(message.get("event"))
        return handler is not None and await handler(socket, message)

    async def _on_media(self, socket: ClientConnection, message: dict[str, Any]) -> bool:
        media = message.get("media")
        try:
            audio = base64.b64decode(media["payload"], validate=True)
        except (TypeError, KeyError, binascii.Error):
            return False
        if self._report.greeting_started_ms is None:
            self._report.greeting_started_ms = self._elapsed_ms()
        self._playback.enqueue(audio)
        return True

    async def _on_mark(self, socket: ClientConnection, message: dict[str, Any]) -> bool:
        mark = message.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            return False
        self._report.marks_received += 1
        if self._playback.add_mark(name):
            await self._echo_mark(socket, name)
        return True

    async def _on_clear(self, socket: ClientConnection, message: dict[str, Any]) -> bool:
        self._report.clears_received += 1
        dropped, pending = self._playback.clear()
        self._caller.cleared(self._elapsed_ms(), dropped)
        for name in pending:  # Twilio echoes pending marks at once after a clear
            await self._echo_mark(socket, name)
        return True

    async def _echo_mark(self, socket: ClientConnection, name: str) -> None:
        await socket.send(self._messages.mark(name))
        self._report.marks_echoed += 1

    async def _send_malformed_frames(self, socket: ClientConnection) -> None:
        for raw in self._config.malformed_frames:
            await socket.send(raw)
            self._report.malformed_frames_sent += 1

    def _elapsed_ms(self) -> int:
        return int((asyncio.get_running_loop().time() - self._t0) * 1000)
