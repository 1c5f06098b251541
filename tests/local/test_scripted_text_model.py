"""The scripted text model's rules: the outcome and fields it derives from a transcript, and its HTTP contract."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from local.asgi_server import ThreadedServer
from local.scripted_text_model import ScriptedTextModel, answer
from voiceline.call_summary import STAND_IN_MODEL, answer_schema
from voiceline.summary_schema import EMPTY

GREETING = "agent: Thanks for calling, how can I help?"
ASKS = "caller: Do you take card payments?"


def tool(name: str, ok: bool = True, **arguments: Any) -> str:
    output = {"ok": True, "output": {"confirmation_code": "K7QM2P"}} if ok else {
        "ok": False, "error": {"type": "slot_taken", "message": "taken"}}
    return "tool_call: " + json.dumps({"name": name, "arguments": arguments, "outcome": "ok" if ok else "tool_error",
                                       "output": output})


# (transcript lines, outcome)
OUTCOMES = [
    ([GREETING, ASKS, tool("book_appointment", service="tap repair")], "booked"),
    ([GREETING, ASKS, tool("book_appointment", ok=False), 'transfer: {"reason": "caller asked", "outcome": "updated"}'],
     "transferred"),
    ([GREETING, ASKS, 'transfer: {"reason": "caller asked", "outcome": "failed"}'], "answered"),
    ([GREETING, ASKS, tool("take_message", message="call me")], "message"),
    ([GREETING, ASKS, "agent: Yes, we do."], "answered"),
    ([GREETING], "no_outcome"),
    ([], "no_outcome"),
]


@pytest.mark.parametrize(("lines", "outcome"), OUTCOMES, ids=[outcome for _, outcome in OUTCOMES])
def test_the_outcome_follows_what_the_tools_and_the_call_did(lines: list[str], outcome: str) -> None:
    assert answer("\n".join(lines), EMPTY)["outcome"] == outcome


def test_the_intent_is_the_callers_first_line_and_the_summary_says_it_is_scripted() -> None:
    given = answer("\n".join([GREETING, ASKS + " [cut off by the caller]", "caller: And on Sundays?"]), EMPTY)

    assert given["intent"] == "Do you take card payments?"
    assert "Scripted rules, not a model" in given["summary"]
    assert answer(GREETING, EMPTY)["intent"] == "unknown: the caller said nothing"


def test_fields_come_from_tool_calls_when_their_type_fits_else_null_or_empty() -> None:
    fields = {"type": "object", "additionalProperties": False,
              "required": ["service", "confirmation_code", "urgency", "count", "paid", "extra"],
              "properties": {"service": {"type": ["string", "null"]}, "confirmation_code": {"type": "string"},
                             "urgency": {"type": "string", "enum": ["low", "high"]}, "count": {"type": "integer"},
                             "paid": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
                             "extra": {"type": "object", "additionalProperties": False, "required": ["service"],
                                       "properties": {"service": {"type": "string"}}}}}
    transcript = "\n".join([GREETING, tool("book_appointment", service="tap repair", count="two", urgency="urgent")])

    assert answer(transcript, fields)["fields"] == {"service": "tap repair", "confirmation_code": "K7QM2P",
                                                    "urgency": "low", "count": 0, "paid": None,
                                                    "extra": {"service": "tap repair"}}


def test_it_answers_the_responses_api_shape_and_refuses_a_request_without_a_key() -> None:
    stand_in = ScriptedTextModel()
    body = {"model": "gpt-4.1-mini", "input": f"{GREETING}\n{ASKS}",
            "text": {"format": {"type": "json_schema", "name": "call_summary", "strict": True,
                                "schema": answer_schema(None)}}}
    with ThreadedServer(stand_in.app()) as server:
        reply = httpx.post(f"{server.url}/v1/responses", json=body, headers={"Authorization": "Bearer x"}, timeout=5)
        refused = httpx.post(f"{server.url}/v1/responses", json=body, timeout=5)
        malformed = httpx.post(f"{server.url}/v1/responses", json={"input": "hi"},
                               headers={"Authorization": "Bearer x"}, timeout=5)

    assert reply.status_code == 200
    assert (reply.json()["status"], reply.json()["model"]) == ("completed", STAND_IN_MODEL)
    [message] = reply.json()["output"]
    assert json.loads(message["content"][0]["text"])["outcome"] == "answered"
    assert refused.status_code == 401 and "API key" in refused.json()["error"]["message"]
    assert malformed.status_code == 400
    assert stand_in.requests == 3
