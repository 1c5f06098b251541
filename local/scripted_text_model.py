"""The local stand-in for OpenAI's text model: `POST /v1/responses` with a strict json_schema, answered by rules.

It is no model. It reads the transcript it is given (voiceline.call_summary's format) and derives a
plain answer: the intent is the caller's first line; the outcome is booked when book_appointment
succeeded, transferred when a transfer went through, message when take_message succeeded, answered
when both sides spoke, else no_outcome; each agent-defined field is taken from a tool call's
argument or output of the same name, else null (or its type's empty value when it is not nullable).
Every reply names its model "scripted-stand-in", so the summary it produced is stored labelled as such.

For tests: `GET /local/requests` counts the answered requests; `POST /local/faults`
(`{"status": 500}`, `{"reply": "garbage"}` or `{"delay_s": 5}`, with `"times": n`, default 1) makes the
next requests fail, answer text that is not JSON, or stall; `DELETE /local/faults` clears them.

    python -m local.scripted_text_model --port 8091
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.asgi_server import listening_socket
from local.environment import TEXT_MODEL_PORT
from voiceline.call_summary import STAND_IN_MODEL

logger = logging.getLogger("voiceline.scripted_text_model")
SUCCESSFUL_OUTCOMES = {"booked": "book_appointment", "message": "take_message"}


@dataclass
class Fault:
    status: int | None = None
    reply: str | None = None  # "garbage": output_text that is not JSON
    delay_s: float = 0.0
    times: int = 1


@dataclass
class ScriptedTextModel:
    requests: int = 0
    faults: list[Fault] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/responses", self.respond, methods=["POST"]),
            Route("/local/requests", self.count, methods=["GET"]),
            Route("/local/faults", self.add_fault, methods=["POST"]),
            Route("/local/faults", self.clear_faults, methods=["DELETE"]),
            Route("/health", lambda request: JSONResponse({"status": "ok"}), methods=["GET"]),
        ])

    async def respond(self, request: Request) -> Response:
        self.requests += 1
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "You didn't provide an API key.", "invalid_request_error")
        try:
            body = await request.json()
            transcript, schema = body["input"], body["text"]["format"]["schema"]
            assert body["text"]["format"]["type"] == "json_schema" and body["text"]["format"]["strict"] is True
            fields_schema = schema["properties"]["fields"]
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(400, "expected input text and text.format: a strict json_schema with a fields property",
                          "invalid_request_error")
        fault = self._next_fault()
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.status is not None:
            return _error(fault.status, "scripted fault", "server_error")
        text = "this is not JSON" if fault is not None and fault.reply == "garbage" else json.dumps(
            answer(str(transcript), fields_schema))
        return JSONResponse({
            "id": f"resp_{secrets.token_hex(12)}", "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": STAND_IN_MODEL,
            "output": [{"type": "message", "id": f"msg_{secrets.token_hex(12)}", "status": "completed",
                        "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": len(str(transcript)) // 4, "output_tokens": len(text) // 4},
        })

    async def count(self, request: Request) -> Response:
        return JSONResponse({"requests": self.requests})

    async def add_fault(self, request: Request) -> Response:
        try:
            fault = Fault(**await request.json())
        except (ValueError, TypeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        self.faults.append(fault)
        return JSONResponse({"faults": len(self.faults)}, status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(status_code=204)

    def _next_fault(self) -> Fault | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.faults.pop(0)
        return fault


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                        status_code=status)


@dataclass
class _Transcript:
    caller_lines: list[str] = field(default_factory=list)
    agent_lines: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    transferred: bool = False


def _read(transcript: str) -> _Transcript:
    read = _Transcript()
    for line in transcript.splitlines():
        kind, _, rest = line.partition(": ")
        if kind == "caller":
            read.caller_lines.append(rest.removesuffix(" [cut off by the caller]"))
        elif kind == "agent":
            read.agent_lines += 1
        elif kind in ("tool_call", "transfer"):
            try:
                data = json.loads(rest)
            except ValueError:
                continue
            if kind == "tool_call" and isinstance(data, dict):
                read.tool_calls.append(data)
            elif isinstance(data, dict) and data.get("outcome") in ("updated", "call_already_gone"):
                read.transferred = True
    return read


def _succeeded(call: dict[str, Any]) -> bool:
    output = call.get("output")
    return call.get("outcome") == "ok" and isinstance(output, dict) and output.get("ok") is True


def answer(transcript: str, fields_schema: dict[str, Any]) -> dict[str, Any]:
    """The stand-in's answer: rules over the transcript, never invented text."""
    read = _read(transcript)
    succeeded = {call.get("name") for call in read.tool_calls if _succeeded(call)}
    if SUCCESSFUL_OUTCOMES["booked"] in succeeded:
        outcome = "booked"
    elif read.transferred:
        outcome = "transferred"
    elif SUCCESSFUL_OUTCOMES["message"] in succeeded:
        outcome = "message"
    elif read.caller_lines and read.agent_lines:
        outcome = "answered"
    else:
        outcome = "no_outcome"
    first = read.caller_lines[0][:200] if read.caller_lines else ""
    intent = first or "unknown: the caller said nothing"
    summary = (f'The caller first said: "{first}". ' if first else "The caller said nothing. ") + (
        f"Scripted rules, not a model, read {len(read.caller_lines)} caller lines and {len(read.tool_calls)} "
        f"tool calls and found the outcome {outcome}.")
    known: dict[str, Any] = {}
    for call in read.tool_calls:
        known.update(call.get("arguments") or {} if isinstance(call.get("arguments"), dict) else {})
        output = call.get("output")
        if _succeeded(call) and isinstance(output.get("output"), dict):  # type: ignore[union-attr]
            known.update(output["output"])  # type: ignore[index]
    return {"summary": summary, "intent": intent, "outcome": outcome, "fields": _value(fields_schema, known)}


def _types(schema: dict[str, Any]) -> list[str]:
    types = schema.get("type", [])
    return [types] if isinstance(types, str) else list(types)


_MATCHES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,)}
_EMPTY: dict[str, Any] = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": []}


def _value(schema: dict[str, Any], known: dict[str, Any], name: str | None = None) -> Any:
    """A value for `schema`: what the call said under `name` if it fits, else null or the type's empty value."""
    alternatives = schema.get("anyOf") or [schema]
    for alternative in alternatives:
        if "object" in _types(alternative):
            return {key: _value(child, known, key) for key, child in (alternative.get("properties") or {}).items()}
    found = known.get(name) if name is not None else None
    if any(_fits(found, alternative) for alternative in alternatives):
        return found
    if any("null" in _types(alternative) or None in (alternative.get("enum") or []) for alternative in alternatives):
        return None
    first = alternatives[0]
    return first["enum"][0] if first.get("enum") else _EMPTY.get((_types(first) or ["string"])[0], "")


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    if value is None or ("enum" in schema and value not in schema["enum"]):
        return False
    kinds = _types(schema)
    # bool is an int in Python, never in JSON Schema.
    return not kinds or any(isinstance(value, _MATCHES.get(kind, ())) and (kind == "boolean") == isinstance(value, bool)
                            for kind in kinds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted stand-in for OpenAI's Responses API (text, structured).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=TEXT_MODEL_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = uvicorn.Config(ScriptedTextModel().app(), lifespan="off", proxy_headers=False)
    uvicorn.Server(config).run(sockets=[listening_socket(args.host, args.port)])


if __name__ == "__main__":
    main()
