"""A response whose output is function calls, and the round trip it opens until every output is back.

Several calls in one response are parallel calls, as the real model makes them: the client runs
them, answers each `call_id` with a `function_call_output` item, then asks for a response with
`response.create`. Only then does the agent say the line the calls were made for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from local.scripted_model.context import ContextItem
from local.scripted_model.conversation import Line, ToolCall
from local.scripted_model.events import function_call_item, new_id, response_object
from local.scripted_model.usage import InputUsage, Tokens, text_tokens, usage

ARGUMENT_CHUNK = 16  # characters per arguments delta: clients must join them, or wait for `.done`
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ToolRound:
    """Function calls the agent made, and the line it owes once they are answered."""

    line: Line
    waiting_for: set[str] = field(default_factory=set)
    """Call ids with no `function_call_output` yet."""


@dataclass(frozen=True)
class MadeCall:
    call: ToolCall
    call_id: str
    item: ContextItem


class FunctionCallResponse:
    """Streams the calls as GA events in one burst; there is no audio in it for a caller to cut off."""

    def __init__(self, calls: list[MadeCall], previous_item_id: str | None, session: dict[str, Any],
                 read: InputUsage, send: Send) -> None:
        self.id = new_id("resp")
        self.finished = False
        self._calls = calls
        self._previous_item_id = previous_item_id
        self._session = session
        self._read = read
        self._send = send

    async def play(self) -> None:
        await self._send({"type": "response.created",
                          "response": response_object(self.id, "in_progress", [], self._session)})
        done_items = []
        previous_item_id = self._previous_item_id
        for index, made in enumerate(self._calls):
            done_items.append(await self._stream_call(index, made, previous_item_id))
            previous_item_id = made.item.id
        used = usage(self._read, Tokens(text_tokens(sum(len(made.call.arguments) for made in self._calls))))
        self.finished = True
        await self._send({"type": "response.done",
                          "response": response_object(self.id, "completed", done_items, self._session, used)})

    async def _stream_call(self, index: int, made: MadeCall, previous_item_id: str | None) -> dict[str, Any]:
        name, arguments, item_id = made.call.name, made.call.arguments, made.item.id
        address = {"response_id": self.id, "item_id": item_id, "output_index": index, "call_id": made.call_id}
        added = function_call_item(item_id, made.call_id, name, "", "in_progress")
        await self._send({"type": "response.output_item.added", "response_id": self.id, "output_index": index,
                          "item": added})
        await self._send({"type": "conversation.item.added", "previous_item_id": previous_item_id, "item": added})
        for start in range(0, len(arguments), ARGUMENT_CHUNK):
            await self._send({"type": "response.function_call_arguments.delta", **address,
                              "delta": arguments[start:start + ARGUMENT_CHUNK]})
        await self._send({"type": "response.function_call_arguments.done", **address, "name": name,
                          "arguments": arguments})
        done = function_call_item(item_id, made.call_id, name, arguments, "completed")
        await self._send({"type": "response.output_item.done", "response_id": self.id, "output_index": index,
                          "item": done})
        await self._send({"type": "conversation.item.done", "previous_item_id": previous_item_id, "item": done})
        return done
