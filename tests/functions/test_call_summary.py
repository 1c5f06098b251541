"""The post-call summary Lambda through its real handler: moto for DynamoDB, the scripted text model over real HTTP."""

from __future__ import annotations

import copy
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jsonschema
import pytest

from local.asgi_server import ThreadedServer
from local.lambda_runtime import LambdaContext, import_module_from
from local.scripted_text_model import ScriptedTextModel
from local.stream_poller import passes
from tests.conftest import load_event
from tests.infra.test_template import RESOURCES, policy_statements, record_dynamodb_calls, ref
from voiceline import calls
from voiceline.calls import NewEvent
from voiceline.models import Agent, Call

ROOT = Path(__file__).resolve().parents[2]
TENANT = "tenant-plumbing"
AGENT_ID = "agent-plumbing"
FIELDS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["service", "slot_start", "customer_name", "urgent", "callback_number"],
    "properties": {
        "service": {"type": ["string", "null"]},
        "slot_start": {"type": ["string", "null"]},
        "customer_name": {"type": ["string", "null"]},
        "urgent": {"type": "boolean"},
        "callback_number": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
}
BOOKING_TOOL_CALL = {"name": "book_appointment", "call_id": "call_1", "outcome": "ok", "duration_ms": 120.0,
                     "arguments": {"service": "tap repair", "slot_start": "2030-03-12T10:00",
                                   "customer_name": "Jordan Lee"},
                     "output": {"ok": True, "output": {"confirmation_code": "K7QM2P", "service": "Tap repair"}}}
BOOKED_CALL = [
    NewEvent("transcript", 400, role="agent", text="Thanks for calling Bright Plumbing, how can I help?"),
    NewEvent("transcript", 2100, role="caller", text="My kitchen tap is leaking, can someone come on Tuesday?"),
    NewEvent("tool_call", 3000, role="agent", text="book_appointment", data=BOOKING_TOOL_CALL),
    NewEvent("transcript", 3500, role="agent", text="You're booked for Tuesday at ten, code K7QM2P."),
]
_environments = itertools.count(1)
_sequence_numbers = itertools.count(1)


@pytest.fixture
def text_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedTextModel, str]]:
    """The scripted stand-in on a real socket, and the function's environment pointing at it with a key."""
    stand_in = ScriptedTextModel()
    with ThreadedServer(stand_in.app()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_API_BASE", server.url)
        monkeypatch.setenv("SUMMARY_TIMEOUT_S", "2")
        yield stand_in, server.url


@pytest.fixture
def handler(dynamodb: None) -> ModuleType:
    """A fresh execution environment of functions/call_summary/app.py, with the agent that defines fields.

    Its log lines are kept for `logged`: Powertools keeps one log handler per service for the whole process.
    """
    Agent(AGENT_ID, tenant_id=TENANT, name="Ava", instructions="Help.", greeting="Hi.",
          summary_schema=FIELDS_SCHEMA).save()
    module = import_module_from(ROOT / "functions" / "call_summary" / "app.py", f"call_summary_{next(_environments)}")
    module.logger.registered_handler.stream = io.StringIO()  # not setStream: it flushes the old, perhaps closed one
    return module


def ended_call(call_sid: str, events: list[NewEvent] = BOOKED_CALL) -> None:
    calls.create_call(call_sid, TENANT, AGENT_ID, "+15551234567", "+15550100")
    if events:
        calls.append_events(call_sid, 1, events)
    Call(call_sid).update(actions=[Call.status.set("ended"), Call.end_reason.set("agent_hung_up"),
                                   Call.duration_s.set(42)])


def batch(*call_sids: str) -> dict[str, Any]:
    """The sample stream event (events/call_summary/call_ended.json) with one record per call."""
    [template] = load_event("call_summary/call_ended.json")["Records"]
    records = []
    for call_sid in call_sids:
        record = copy.deepcopy(template)
        record["dynamodb"]["Keys"]["call_sid"]["S"] = call_sid
        record["dynamodb"]["SequenceNumber"] = f"{next(_sequence_numbers):024d}"
        records.append(record)
    return {"Records": records}


def invoke(handler: ModuleType, event: dict[str, Any]) -> list[str]:
    """The handler's answer to a batch: the sequence numbers it reports as failed."""
    result = handler.lambda_handler(event, LambdaContext("voiceline-call-summary", 512, 120))
    return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


def logged(handler: ModuleType, level: str) -> list[dict[str, Any]]:
    lines = handler.logger.registered_handler.stream.getvalue().splitlines()
    return [entry for entry in map(json.loads, lines) if entry.get("level") == level]


def requests(url: str) -> int:
    return httpx.get(f"{url}/local/requests", timeout=5).json()["requests"]


def fault(url: str, **fault: Any) -> None:
    assert httpx.post(f"{url}/local/faults", json=fault, timeout=5).status_code == 201


def test_an_ended_call_gets_its_summary_with_the_outcome_and_the_agents_fields(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str]) -> None:
    ended_call("CA1")

    assert invoke(handler, batch("CA1")) == []

    summary = Call.get("CA1").summary
    assert summary["outcome"] == "booked"
    assert summary["intent"] == "My kitchen tap is leaking, can someone come on Tuesday?"
    assert summary["source"] == "scripted stand-in" and summary["model"] == "scripted-stand-in"
    jsonschema.validate(summary["fields"], FIELDS_SCHEMA)
    # The stand-in takes each field from a tool call's arguments, then from what a successful tool answered.
    assert summary["fields"] == {"service": "Tap repair", "slot_start": "2030-03-12T10:00",
                                 "customer_name": "Jordan Lee", "urgent": False, "callback_number": None}
    assert summary["summary"].count(". ") == 1 and summary["created_at"]


def test_a_replayed_record_does_not_ask_the_model_again(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str]) -> None:
    ended_call("CA1")
    event = batch("CA1")

    assert invoke(handler, event) == []
    first = Call.get("CA1").summary
    assert invoke(handler, event) == []

    assert requests(text_model[1]) == 1
    assert Call.get("CA1").summary == first


def test_only_the_change_that_ends_a_call_passes_the_template_filter() -> None:
    """The stream's other changes (Twilio's status, the cost, this summary) never invoke the function."""
    properties = RESOURCES["CallSummaryFunction"]["Properties"]["Events"]["CallEnded"]["Properties"]
    filters = [json.loads(item["Pattern"]) for item in properties["FilterCriteria"]["Filters"]]
    [record] = load_event("call_summary/call_ended.json")["Records"]

    def changed(old: str | None, new: str) -> dict[str, Any]:
        changed = copy.deepcopy(record)
        changed["dynamodb"]["NewImage"]["status"] = {"S": new}
        if old is None:
            changed["eventName"] = "INSERT"
            del changed["dynamodb"]["OldImage"]
        else:
            changed["dynamodb"]["OldImage"]["status"] = {"S": old}
        return changed

    assert passes(filters, changed("in_progress", "ended"))
    assert passes(filters, changed("ringing", "ended"))  # an answering machine the webhook hung up on
    assert not passes(filters, changed("ended", "ended"))
    assert not passes(filters, changed("ringing", "in_progress"))
    assert not passes(filters, changed(None, "ringing"))


def test_a_call_that_is_not_ended_is_not_summarised(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str]) -> None:
    calls.create_call("CA1", TENANT, AGENT_ID, "+15551234567", "+15550100")
    calls.append_events("CA1", 1, BOOKED_CALL)

    assert invoke(handler, batch("CA1", "CA-unknown")) == []

    assert Call.get("CA1").summary is None
    assert requests(text_model[1]) == 0


def test_a_call_without_a_word_said_is_not_sent_to_the_model(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str]) -> None:
    ended_call("CA1", events=[])

    assert invoke(handler, batch("CA1")) == []

    assert Call.get("CA1").summary is None and requests(text_model[1]) == 0


@pytest.mark.parametrize("secret", [None, "REPLACE_WITH_OPENAI_API_KEY"], ids=["unset", "template placeholder"])
def test_without_an_openai_key_nothing_is_asked_or_stored(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str], monkeypatch: pytest.MonkeyPatch,
        secret: str | None) -> None:
    if secret is None:
        monkeypatch.delenv("OPENAI_API_KEY")
    else:
        monkeypatch.setenv("OPENAI_API_KEY", secret)
    ended_call("CA1")

    assert invoke(handler, batch("CA1")) == []

    assert Call.get("CA1").summary is None and requests(text_model[1]) == 0


# (fault at the stand-in, what the log says)
UNUSABLE_ANSWERS = [
    ({"reply": "garbage"}, "output_text is not JSON"),
    ({"status": 400}, "HTTP 400: scripted fault"),
    ({"status": 401}, "HTTP 401: scripted fault"),
]


@pytest.mark.parametrize(("given", "reason"), UNUSABLE_ANSWERS, ids=lambda value: str(value))
def test_an_unusable_answer_is_logged_and_skipped_not_retried(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str], given: dict[str, Any], reason: str) -> None:
    ended_call("CA1")
    fault(text_model[1], **given)

    assert invoke(handler, batch("CA1")) == []

    assert Call.get("CA1").summary is None
    [line] = logged(handler, "ERROR")
    assert line["message"] == "text model gave no usable summary; skipped, not retried"
    assert reason in line["reason"] and line["call_sid"] == "CA1"


# (fault at the stand-in, what the log says)
UNAVAILABLE = [
    ({"delay_s": 3}, "no answer within 2 s"),
    ({"status": 500}, "HTTP 500"),
    ({"status": 429}, "HTTP 429"),
]


@pytest.mark.parametrize(("given", "reason"), UNAVAILABLE, ids=lambda value: str(value))
def test_an_unavailable_model_fails_only_its_record_which_a_retry_then_summarises(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str], given: dict[str, Any], reason: str) -> None:
    ended_call("CA1")
    ended_call("CA2")
    event = batch("CA1", "CA2")
    fault(text_model[1], **given)  # the next request only: CA1's

    assert invoke(handler, event) == [event["Records"][0]["dynamodb"]["SequenceNumber"]]

    assert Call.get("CA1").summary is None
    assert Call.get("CA2").summary["outcome"] == "booked"
    warnings = logged(handler, "WARNING")
    assert [(line["message"], line["call_sid"]) for line in warnings] == [
        ("text model unavailable; the record will be retried", "CA1")]
    assert reason in warnings[0]["reason"]

    # Lambda retries from the failed record: CA1 is summarised now, CA2 is not asked for twice.
    assert invoke(handler, event) == []
    assert Call.get("CA1").summary["outcome"] == "booked"
    assert requests(text_model[1]) == 3


def test_its_permissions_are_exactly_what_a_summary_uses(
        handler: ModuleType, text_model: tuple[ScriptedTextModel, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Least privilege: every DynamoDB call of a stored summary is granted, every grant is used; one secret."""
    properties = RESOURCES["CallSummaryFunction"]["Properties"]
    granted = {(action.removeprefix("dynamodb:"), statement["Resource"]["Fn::GetAtt"][0])
               for statement in policy_statements(properties["Policies"]) if "dynamodb" in str(statement["Action"])
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    ended_call("CA1")

    made = record_dynamodb_calls(monkeypatch)
    assert invoke(handler, batch("CA1")) == []
    monkeypatch.undo()

    assert Call.get("CA1").summary is not None
    assert made == granted
    secrets = [ref(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]) for policy in properties["Policies"]
               if "AWSSecretsManagerGetSecretValuePolicy" in policy]
    assert secrets == ["OpenAIApiKeySecret"]
    assert ref(properties["Environment"]["Variables"]["OPENAI_API_KEY_SECRET_ARN"]) == "OpenAIApiKeySecret"
    event = properties["Events"]["CallEnded"]["Properties"]
    assert event["Stream"] == {"Fn::GetAtt": ["CallsTable", "StreamArn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
