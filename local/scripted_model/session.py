"""One Realtime WebSocket session: GA client events in, GA server events out, all state on this object."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from local.scripted_model import events, usage
from local.scripted_model.context import ContextItem, ConversationContext
from local.scripted_model.conversation import Line, Script, ScriptCursor, ToolCall
from local.scripted_model.faults import ArmedFault
from local.scripted_model.function_calls import FunctionCallResponse, MadeCall, ToolRound
from local.scripted_model.input_buffer import InputAudioBuffer
from local.scripted_model.record import SessionRecord
from local.scripted_model.responses import SpokenResponse
from local.scripted_model.schema import CLIENT_EVENTS, default_session, merged_session
from local.scripted_model.vad import SpeechEvent
from local.scripted_model.validation import ProtocolError

log = logging.getLogger(__name__)

MIN_COMMIT_MS = 100  # the API refuses to commit less


class RealtimeSession:
    def __init__(self, connection: ServerConnection, script: Script, model: str, pace_s: float,
                 fault: ArmedFault | None = None, context_window: int = usage.CONTEXT_WINDOW_TOKENS) -> None:
        self.record = SessionRecord(events.new_id("sess"), model)
        self._meter = usage.UsageMeter()
        self._context_window = context_window
        self._connection = connection
        self._config = default_session(self.record.id, model)
        self.record.session = self._config
        self._input = InputAudioBuffer(self._config["audio"]["input"])
        self._context = ConversationContext()
        self._cursor = ScriptCursor(script)
        self._pace_s = pace_s
        self._response: SpokenResponse | FunctionCallResponse | None = None
        self._response_task: asyncio.Task[None] | None = None
        self._tool_round: ToolRound | None = None
        self._call_ids: set[str] = set()
        """Every function call in the conversation, made by the model or created by the client."""
        self._speech_item_id: str | None = None
        self._speech_started_ms = 0
        self._fault = fault

    @property
    def conversation(self) -> list[ContextItem]:
        """The items the model holds now, oldest first: what its next response would read."""
        return self._context.items

    async def run(self) -> None:
        """Serve the connection until the client goes; never closes it over a bad event."""
        if self._fault is not None:
            self._fault.arm(self.send)
        await self.send({"type": "session.created", "session": self._config})
        try:
            async for message in self._connection:
                if self._fault is not None:
                    await self._fault.reading.wait()
                await self._receive(message)
        except ConnectionClosed:
            pass
        finally:
            self.record.closed = True
            if self._fault is not None:
                self._fault.disarm()
            if self._response_task is not None:
                self._response_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._response_task

    async def send(self, event: dict[str, Any]) -> None:
        event = {"event_id": events.new_id("event"), **event}
        if event["type"] == "response.done":
            self.record.usages.append(event["response"]["usage"])
        if event["type"] == "error":
            self.record.errors_sent.append({"code": event["error"]["code"], "message": event["error"]["message"]})
        with contextlib.suppress(ConnectionClosed):  # the run loop sees the close and ends the session
            await self._connection.send(json.dumps(event))
        if self._fault is not None:
            await self._fault.after_sent(event["type"], self.send)

    async def _receive(self, message: str | bytes) -> None:
        client_event_id = None
        try:
            event = _parse(message)
            client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            self.record.event_counts[event["type"]] += 1
            check = CLIENT_EVENTS.get(event["type"])
            if check is None:
                supported = ", ".join(f"'{name}'" for name in CLIENT_EVENTS)
                raise ProtocolError("invalid_value",
                                    f"Invalid value: '{event['type']}'. Supported values are: {supported}.", "type")
            check(event, "")
            await HANDLERS[event["type"]](self, event)
        except ProtocolError as problem:
            await self.send(events.error(problem, client_event_id))
        except Exception:  # a stand-in bug must not look like a closed socket to the client under test
            log.exception("scripted model failed on a client event")
            await self.send(events.error(ProtocolError("server_error", "The server had an error.",
                                                            error_type="server_error"), client_event_id))

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        voice = event["session"].get("audio", {}).get("output", {}).get("voice")
        if voice is not None and voice != self._config["audio"]["output"]["voice"] and self.record.responses:
            raise ProtocolError("cannot_update_voice",
                                "Cannot update a conversation's voice if assistant audio is present.",
                                "session.audio.output.voice")
        self._config = merged_session(self._config, event["session"])
        self.record.session = self._config
        self._input.configure(self._config["audio"]["input"])
        await self.send({"type": "session.updated", "session": self._config})

    async def _on_append(self, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(event["audio"], validate=True)
        except binascii.Error:
            raise ProtocolError("invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.",
                                "audio") from None
        self.record.note_input_audio(audio)
        for speech in self._input.append(audio):
            await self._on_speech(speech)

    async def _on_speech(self, speech: SpeechEvent) -> None:
        detection = self._config["audio"]["input"]["turn_detection"]
        if speech.kind == "started":
            self._speech_item_id = events.new_id("item")
            self._speech_started_ms = speech.audio_ms
            await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": speech.audio_ms,
                             "item_id": self._speech_item_id})
            if (detection["interrupt_response"] and isinstance(self._response, SpokenResponse)
                    and self._response.cancellable):
                self._response.cancel("turn_detected")
            return
        item_id = self._speech_item_id or events.new_id("item")
        await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": speech.audio_ms,
                         "item_id": item_id})
        await self._commit(item_id, speech.audio_ms - self._speech_started_ms)
        if detection["create_response"] and not self._responding and not self._awaiting_outputs:
            self._respond({})

    async def _on_commit(self, event: dict[str, Any]) -> None:
        buffered_ms = self._input.uncommitted_ms
        if buffered_ms < MIN_COMMIT_MS:
            raise ProtocolError("input_audio_buffer_commit_empty",
                                "Error committing input audio buffer: buffer too small. Expected at least "
                                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.")
        await self._commit(self._speech_item_id or events.new_id("item"), buffered_ms)

    async def _commit(self, item_id: str, audio_ms: int) -> None:
        """Turn the buffered caller audio into a user item; transcribe it from the script if asked to."""
        self._speech_item_id = None
        self._input.take()
        previous_item_id = self._context.last_item_id
        self._context.add(ContextItem(item_id, "user", audio_ms=audio_ms))
        transcript = self._cursor.hear_caller()
        await self.send({"type": "input_audio_buffer.committed", "previous_item_id": previous_item_id,
                         "item_id": item_id})
        item = events.user_audio_item(item_id, None)
        for kind in ("conversation.item.added", "conversation.item.done"):
            await self.send({"type": kind, "previous_item_id": previous_item_id, "item": item})
        if self._config["audio"]["input"]["transcription"] is not None:
            await self.send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                             "content_index": 0, "transcript": transcript,
                             "usage": {"type": "duration", "seconds": audio_ms / 1000}})

    async def _on_clear(self, event: dict[str, Any]) -> None:
        self._input.take()
        await self.send({"type": "input_audio_buffer.cleared"})

    @property
    def _responding(self) -> bool:
        return self._response is not None and not self._response.finished

    @property
    def _awaiting_outputs(self) -> bool:
        return self._tool_round is not None and bool(self._tool_round.waiting_for)

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        if self._response is not None and self._responding:
            raise ProtocolError("conversation_already_has_active_response",
                                f"Conversation already has an active response in progress: {self._response.id}. "
                                "Wait until the response is finished before creating a new one.")
        if self._tool_round is not None and self._tool_round.waiting_for:
            # The real model would answer anyway, without the results; the stand-in makes that client bug loud.
            missing = ", ".join(sorted(self._tool_round.waiting_for))
            raise ProtocolError("function_call_output_missing",
                                "Scripted model: response.create before a function_call_output for every call "
                                f"of the previous response; missing call_id {missing}.")
        self._respond(event.get("response", {}))

    def _respond(self, request: dict[str, Any]) -> None:
        """Start the next reply: the line owed after a tool round, else the script's next line, whose function
        calls come first if the response may use those tools (declared, and `tool_choice` not "none").
        Its events flow from their own task."""
        tools = request.get("tools", self._config["tools"])
        prompt = usage.prompt_text(request.get("instructions", self._config["instructions"]), tools)
        self._retain(prompt)
        read = self._meter.read_input(prompt, self._context.items)
        if self._tool_round is not None:
            line, self._tool_round = self._tool_round.line, None
        else:
            line = self._cursor.next_reply()
            may_call = request.get("tool_choice", self._config.get("tool_choice", "auto")) != "none"
            calls = self._callable(line.tool_calls, tools) if may_call else []
            if calls:
                self._call_functions(line, calls, read)
                return
        item = ContextItem(events.new_id("item"), "assistant")
        previous_item_id = self._context.last_item_id
        self._context.add(item)
        self._start(SpokenResponse(line, item, previous_item_id, self._config, read, self.send, self._pace_s))

    def _retain(self, prompt: str) -> None:
        """Drop the oldest items when this response would pass the context limit (usage.py, rule 6)."""
        def tokens_of(item: ContextItem) -> int:
            return usage.item_tokens(item).total

        keep = usage.retention_target(self._config["truncation"], sum(map(tokens_of, self._context.items)),
                                      usage.text_tokens(len(prompt)), self._context_window)
        if keep is not None:
            self.record.items_dropped += self._context.drop_oldest(keep, tokens_of)

    def _callable(self, calls: tuple[ToolCall, ...], tools: list[dict[str, Any]]) -> list[ToolCall]:
        """The scripted calls to tools the client declared: a model cannot call what it was never given."""
        declared = {tool.get("name") for tool in tools if tool["type"] == "function"}
        self.record.undeclared_tool_calls.extend(call.name for call in calls if call.name not in declared)
        return [call for call in calls if call.name in declared]

    def _call_functions(self, line: Line, calls: list[ToolCall], read: usage.InputUsage) -> None:
        previous_item_id = self._context.last_item_id
        made = []
        for call in calls:
            item = ContextItem(events.new_id("item"), "tool", text=call.arguments)
            self._context.add(item)
            made.append(MadeCall(call, events.new_id("call"), item))
            self._call_ids.add(made[-1].call_id)
            self.record.tool_calls.append({"call_id": made[-1].call_id, "name": call.name,
                                           "arguments": json.loads(call.arguments)})
        self._tool_round = ToolRound(line, {call.call_id for call in made})
        self._start(FunctionCallResponse(made, previous_item_id, self._config, read, self.send))

    def _start(self, response: SpokenResponse | FunctionCallResponse) -> None:
        self._response = response
        self._response_task = asyncio.create_task(response.play())
        self.record.responses += 1

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        self.record.cancels += 1
        response = self._response
        if not isinstance(response, SpokenResponse) or not response.cancellable \
                or event.get("response_id", response.id) != response.id:
            raise ProtocolError("response_cancel_not_active", "Cancellation failed: no active response found")
        response.cancel("client_cancelled")

    async def _on_item_create(self, event: dict[str, Any]) -> None:
        item = event["item"]
        item_id = item.get("id") or events.new_id("item")
        if self._context.get(item_id) is not None:
            raise ProtocolError("invalid_value", f"Item with id '{item_id}' already exists.", "item.id")
        previous_item_id = event.get("previous_item_id")
        if previous_item_id not in (None, "root") and self._context.get(previous_item_id) is None:
            raise ProtocolError("invalid_value", f"Previous item with id '{previous_item_id}' not found.",
                                "previous_item_id")
        if item["type"] == "function_call_output":
            self._take_output(item["call_id"], item["output"])
        elif item["type"] == "function_call" and "call_id" in item:
            self._call_ids.add(item["call_id"])
        last_item_id = self._context.last_item_id
        appended = previous_item_id in (None, last_item_id)
        if appended and item["type"] == "message" and item["role"] in ("user", "assistant"):
            # A restored conversation goes on where it was. A line put back in the middle (an agent's
            # speech swapped for its text) is not a new line of the script.
            self._cursor.replayed(item["role"])
        self._context.add(ContextItem(item_id, item.get("role", "tool"), text=_item_text(item)),
                          after=None if appended else previous_item_id)
        stored = {"object": "realtime.item", "status": "completed", **item, "id": item_id}
        for kind in ("conversation.item.added", "conversation.item.done"):
            await self.send({"type": kind, "previous_item_id": last_item_id if appended else previous_item_id,
                             "item": stored})

    async def _on_item_delete(self, event: dict[str, Any]) -> None:
        item_id = event["item_id"]
        if self._context.get(item_id) is None:
            raise ProtocolError("invalid_value", f"Item with item_id not found: {item_id}", "item_id")
        self._context.delete(item_id)
        self.record.deletes.append(item_id)
        await self.send({"type": "conversation.item.deleted", "item_id": item_id})

    def _take_output(self, call_id: str, output: str) -> None:
        if call_id not in self._call_ids:
            raise ProtocolError("invalid_value", f"No tool call found for function call output with call_id {call_id}.",
                                "item.call_id")
        self.record.tool_outputs.append({"call_id": call_id, "output": _parsed(output)})
        if self._tool_round is not None:
            self._tool_round.waiting_for.discard(call_id)

    async def _on_truncate(self, event: dict[str, Any]) -> None:
        item_id, audio_end_ms = event["item_id"], event["audio_end_ms"]
        item = self._context.get(item_id)
        if item is None:
            raise ProtocolError("invalid_value", f"Item with item_id not found: {item_id}", "item_id")
        if not item.is_model_audio or event["content_index"] != 0:
            raise ProtocolError("invalid_value", "Only model output audio messages can be truncated", "item_id")
        # OpenAI rejects audio_end_ms beyond the generated audio; clients must cap it.
        if audio_end_ms > item.audio_ms:
            raise ProtocolError("invalid_value",
                                f"Audio content of {item.audio_ms}ms is already shorter than {audio_end_ms}ms",
                                "audio_end_ms")
        item.truncated_at_ms = audio_end_ms
        self.record.truncates.append({"item_id": item_id, "audio_end_ms": audio_end_ms,
                                      "generated_ms": item.audio_ms})
        await self.send({"type": "conversation.item.truncated", "item_id": item_id, "content_index": 0,
                         "audio_end_ms": audio_end_ms})


def _parse(message: str | bytes) -> dict[str, Any]:
    if isinstance(message, bytes):
        raise ProtocolError("invalid_event", "Binary frames are not supported; send JSON text events.")
    try:
        event = json.loads(message)
    except json.JSONDecodeError:
        raise ProtocolError("invalid_json", "The event is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProtocolError("missing_required_parameter", "Missing required parameter: 'type'.", "type")
    return event


def _parsed(output: str) -> Any:
    """A function's output as the JSON it usually is, for /sessions; plain text stays text."""
    try:
        return json.loads(output)
    except ValueError:
        return output


def _item_text(item: dict[str, Any]) -> str:
    """The text an item adds to the model's input, for the usage estimate."""
    if item["type"] == "function_call":
        return item["arguments"]
    if item["type"] == "function_call_output":
        return item["output"]
    return " ".join(part.get("text") or part.get("transcript") or "" for part in item["content"])


HANDLERS: dict[str, Callable[[RealtimeSession, dict[str, Any]], Awaitable[None]]] = {
    "session.update": RealtimeSession._on_session_update,
    "input_audio_buffer.append": RealtimeSession._on_append,
    "input_audio_buffer.commit": RealtimeSession._on_commit,
    "input_audio_buffer.clear": RealtimeSession._on_clear,
    "response.create": RealtimeSession._on_response_create,
    "response.cancel": RealtimeSession._on_response_cancel,
    "conversation.item.create": RealtimeSession._on_item_create,
    "conversation.item.truncate": RealtimeSession._on_truncate,
    "conversation.item.delete": RealtimeSession._on_item_delete,
}
