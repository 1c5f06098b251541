"""One call's OpenAI Realtime session over as many connections as it takes: reconnect, restore, recycle.

A dropped socket or a `server_error` is followed by a new connection (from the pool, else opened
with backoff, within a bounded number of tries and a bounded time), the call's own session.update
and the conversation so far replayed as items (`ConversationMemory`). A session near OpenAI's
60-minute limit is renewed the same way, planned, while nobody speaks. The agent does not greet
again: it is only asked to answer when an answer was cut off by the drop. Fatal errors (a bad key,
no quota, an unknown model) are never retried.

While a connection is being replaced, caller audio is buffered, at most the last
`CALLER_AUDIO_KEPT_FRAMES`, and sent to the new session once it is restored: a word said during a
short blip still reaches the model, while older audio, which the model would answer seconds late, is
dropped. A `response.create` asked for meanwhile is sent after the restore; a cancel or a truncate
meant for the lost connection's response is dropped, since that response is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aws_lambda_powertools import Logger
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bridge.conversation_memory import ConversationMemory
from bridge.realtime_connection import FATAL_ERROR_CODES, error_code, is_fatal_connect_error, is_server_error
from bridge.realtime_pool import OpenConnection, RealtimePool, close_socket, open_connection
from bridge.settings import BridgeSettings

logger = Logger(service="voiceline-bridge", child=True)

OPENAI_UNAVAILABLE = "openai_unavailable"
OPENAI_FATAL_ERROR = "openai_fatal_error"
AUDIO_APPEND_PREFIX = '{"type":"input_audio_buffer.append"'  # realtime_protocol.append_audio's own shape
CALLER_AUDIO_KEPT_FRAMES = 50  # 1 s of Twilio's 20 ms frames
MAX_BACKOFF_S = 2.0
RECYCLE_RETRY_S = 30.0  # a renewal that could not connect is tried again this much later; the old session goes on
RESPONSE_CREATE = json.dumps({"type": "response.create"})
_TRACKED_EVENTS = frozenset({"session.updated", "input_audio_buffer.speech_started",
                             "input_audio_buffer.speech_stopped", "response.created", "response.output_item.added",
                             "response.done", "response.output_audio_transcript.done",
                             "conversation.item.input_audio_transcription.completed"})

Record = Callable[[str, dict[str, Any]], None]


class ModelUnavailable(Exception):
    """The Realtime session cannot go on; `end_reason` is what the Call records."""

    def __init__(self, end_reason: str, detail: str) -> None:
        super().__init__(detail)
        self.end_reason = end_reason
        self.detail = detail


class RealtimeLink:
    def __init__(self, settings: BridgeSettings, model: str, pool: RealtimePool | None,
                 on_interrupted: Callable[[], Awaitable[None]], record: Record) -> None:
        self.settings = settings
        self.model = model
        self.memory = ConversationMemory()
        self.failure: ModelUnavailable | None = None
        self.caller_speaking = False
        self.response_active = False
        self.reconnects = 0
        self.recycles = 0
        self._pool = pool
        self._on_interrupted = on_interrupted
        self._record = record
        self._socket: ClientConnection | None = None
        self._opened_at = 0.0
        self._session_update = ""
        self._usable = False  # False while connecting or replacing the socket: sends are held or buffered
        self._caller_audio: deque[str] = deque(maxlen=CALLER_AUDIO_KEPT_FRAMES)
        # The last response.create the call sent, until its output begins: a response the drop kills before
        # the caller heard any of it is asked for again (a last line, the answer to a tool's output...).
        self._requested: str | None = None
        self._replacing = asyncio.Lock()
        self._tries = 0  # connection attempts since the session was last known good (session.updated)
        self._trying_since: float | None = None
        self._recycle_not_before = 0.0

    # ---- opening and closing -----------------------------------------------------------------

    def take_pooled(self) -> bool:
        """The call's first connection from the pool, at once; False when there is none (then `connect()`).

        No task and no await: on a busy event loop, each loop turn on the way to the greeting costs milliseconds.
        """
        pooled = self._pooled()
        if pooled is not None:
            self._socket, self._opened_at = pooled.socket, pooled.opened_at
        return pooled is not None

    async def connect(self) -> None:
        """The call's first connection, with the same retries as a reconnect; a failure is kept for `events()`."""
        try:
            connection = await self._connection_with_retries()
        except ModelUnavailable as failure:
            self._fail(failure, "connect")
            return
        self._socket, self._opened_at = connection.socket, connection.opened_at

    async def start(self, session_update: dict[str, Any]) -> None:
        """Configure the session; the same update configures every later connection of the call."""
        self._session_update = json.dumps(session_update)
        if self._socket is not None:
            await self._send_raw(self._socket, self._session_update)
            self._usable = True

    async def close(self) -> None:
        self._usable = False
        if self._socket is not None:
            await close_socket(self._socket)

    # ---- traffic -----------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        """Send one client event. Never raises: a closed socket is noticed by `events()`, which reconnects."""
        if text.startswith(AUDIO_APPEND_PREFIX):  # the per-frame path: no parsing
            if self._usable:
                await self._send_raw(self._socket, text)
            elif self.failure is None:
                self._caller_audio.append(text)
            return
        event = json.loads(text)
        self.memory.observe_sent(event)
        if event.get("type") == "response.create":
            self._requested = text  # sent now, or by `_restore` when the link is usable again
        if self._usable:
            await self._send_raw(self._socket, text)

    async def events(self) -> AsyncIterator[dict[str, Any] | None]:
        """The model's events in order across reconnects and recycles; None for one that is not a JSON object.

        Raises ModelUnavailable when the session cannot go on.
        """
        while True:
            if self.failure is not None:
                raise self.failure
            socket = self._socket
            assert socket is not None
            cause = "socket closed"
            try:
                async for raw in socket:
                    event = _parse(raw)
                    if event is not None and event.get("type") in _TRACKED_EVENTS:
                        self._observe(event)
                    yield event
                    if event is None or event.get("type") != "error":
                        continue
                    if error_code(event) in FATAL_ERROR_CODES:
                        await self._on_interrupted()
                        raise self._fail(ModelUnavailable(OPENAI_FATAL_ERROR, f"error event {error_code(event)}"),
                                         "error event")
                    if is_server_error(event):
                        cause = f"server error {error_code(event)}"
                        break
            except ConnectionClosed as closed:
                cause = f"socket closed ({closed.rcvd.code if closed.rcvd else 'no close frame'})"
            if socket is self._socket:  # not replaced by a recycle meanwhile: the session was lost
                await self._recover(socket, cause)

    # ---- renewal -----------------------------------------------------------------------------

    def recycle_due(self) -> bool:
        """Time to renew the session before OpenAI's session limit ends it."""
        now = time.monotonic()
        return (self._usable and now - self._opened_at >= self.settings.openai_session_recycle_s
                and now >= self._recycle_not_before)

    def recycle_at(self) -> float:
        """When `recycle_due` can next turn true (monotonic)."""
        return max(self._opened_at + self.settings.openai_session_recycle_s, self._recycle_not_before)

    async def recycle(self) -> None:
        """Move the call to a new connection, planned: same session, same conversation, nothing said."""
        async with self._replacing:
            if not self._usable or self._socket is None:
                return
            self._usable = False
            self._tries, self._trying_since = 0, None
            old, age_s = self._socket, time.monotonic() - self._opened_at
            try:
                connection = await self._connection_with_retries()
            except ModelUnavailable as failure:  # the old session still works: try again later
                logger.warning("OpenAI session renewal failed", error=failure.detail)
                self._recycle_not_before = time.monotonic() + RECYCLE_RETRY_S
                self._usable = True
                return
            try:
                items = await self._restore(connection, answer=False)
            except asyncio.CancelledError:  # the call ended mid-replay; `close()` will see only the new socket
                await close_socket(old)
                raise
            self.recycles += 1
            self._record("model_session_renewed", {"age_s": round(age_s, 1), "items_replayed": items})
        await close_socket(old)

    # ---- inside --------------------------------------------------------------------------------

    async def _recover(self, lost: ClientConnection, cause: str) -> None:
        async with self._replacing:
            if lost is not self._socket:
                return
            self._usable = False
            answer = self.response_active and self.memory.caller_has_spoken
            self.response_active = self.caller_speaking = False
            if self._trying_since is None:
                self._trying_since = time.monotonic()
            logger.warning("OpenAI session lost: reconnecting", cause=cause)
            await self._on_interrupted()
            await close_socket(lost)
            started = time.monotonic()
            try:
                connection = await self._connection_with_retries()
            except ModelUnavailable as failure:
                raise self._fail(failure, cause) from None
            items = await self._restore(connection, answer)
            self.reconnects += 1
            self._record("model_reconnected", {"cause": cause, "tries": self._tries, "items_replayed": items,
                                               "elapsed_ms": round((time.monotonic() - started) * 1000)})

    async def _connection_with_retries(self) -> OpenConnection:
        """A pooled connection, else a new one: backoff between tries, within the tries and time allowed."""
        settings = self.settings
        if self._trying_since is None:
            self._trying_since = time.monotonic()
        deadline = self._trying_since + settings.openai_reconnect_budget_s
        delay = settings.openai_reconnect_backoff_s
        attempts = max(1, settings.openai_reconnect_attempts)
        last_error = "no time left"
        while self._tries < attempts and time.monotonic() < deadline:
            self._tries += 1
            pooled = self._pooled()
            if pooled is not None:
                return pooled
            try:
                return await asyncio.wait_for(open_connection(settings, self.model), deadline - time.monotonic())
            except Exception as error:
                logger.warning("OpenAI connect failed", error=repr(error), attempt=self._tries)  # an alarm counts it
                if is_fatal_connect_error(error):
                    raise ModelUnavailable(OPENAI_FATAL_ERROR, f"connect refused: {error!r}") from None
                last_error = repr(error)
            if self._tries < attempts:
                await asyncio.sleep(max(0.0, min(delay, deadline - time.monotonic())))
                delay = min(delay * 2, MAX_BACKOFF_S)
        raise ModelUnavailable(OPENAI_UNAVAILABLE, f"connect failed after {self._tries} tries: {last_error}")

    def _pooled(self) -> OpenConnection | None:
        return self._pool.take(self.model) if self._pool is not None else None

    async def _restore(self, connection: OpenConnection, answer: bool) -> int:
        """Make `connection` the call's session: configure it, replay the conversation, then the response asked for
        and not finished (or, after a drop mid-answer to the caller, a fresh one)."""
        self._socket, self._opened_at = connection.socket, connection.opened_at
        replay = [json.dumps(event) for event in self.memory.restore_events(self.settings.openai_restore_items)]
        request = self._requested or (RESPONSE_CREATE if answer else None)
        for text in [self._session_update, *replay, *self._caller_audio, *([request] if request else [])]:
            await self._send_raw(connection.socket, text)
        self._caller_audio.clear()
        self._usable = True
        return len(replay)

    def _observe(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "session.updated":
            self._tries, self._trying_since = 0, None  # the session is good again: a later drop gets fresh tries
        elif kind == "input_audio_buffer.speech_started":
            self.caller_speaking = True
        elif kind == "input_audio_buffer.speech_stopped":
            self.caller_speaking = False
        elif kind == "response.created":
            self.response_active = True
        elif kind == "response.output_item.added":
            self._requested = None  # the answer has begun: the caller may be hearing it
        elif kind == "response.done":
            self.response_active = False
            self._requested = None
        self.memory.observe_model_event(event)

    def _fail(self, failure: ModelUnavailable, cause: str) -> ModelUnavailable:
        self.failure = failure
        self._usable = False
        self._caller_audio.clear()
        logger.error("OpenAI session unavailable", end_reason=failure.end_reason, cause=cause, error=failure.detail)
        self._record("error", {"source": "openai", "end_reason": failure.end_reason, "cause": cause,
                               "message": failure.detail})
        return failure

    @staticmethod
    async def _send_raw(socket: ClientConnection | None, text: str) -> None:
        if socket is None:
            return
        with contextlib.suppress(ConnectionClosed):  # the reader sees the close and reconnects
            await socket.send(text)


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None

