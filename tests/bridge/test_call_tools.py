"""The agent's tools in a live call, in-process over real sockets.

The bridge runs under uvicorn, the scripted model makes the function calls its script says, tool
Lambdas answer through the local gateway's Lambda Invoke API (boto3 reaches it through
AWS_ENDPOINT_URL_LAMBDA), Twilio's REST API is the local stand-in, and DynamoDB is moto.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from local.asgi_server import serving
from local.gateway import build_app
from local.scripted_model import ScriptedModelServer, load_script
from local.seed import seed
from tests.bridge.bridge_harness import TwilioLeg, ended_call, known_to_twilio, running_bridge
from tests.conftest import TwilioSigner
from voiceline import calls
from voiceline.models import Agent

ROOT = Path(__file__).resolve().parents[2]
CALLER, BUSINESS_NUMBER, TRANSFER_NUMBER = "+15551234567", "+15550100", "+15557654321"
DEMO_TENANT, DEMO_AGENT = "tenant-demo", "agent-demo"
CLIP = bytes(range(0, 256, 4)) * 50  # 0.4 s of loud μ-law: it plays, and the model's VAD ignores it

# Tool functions that misbehave the ways a real one can; each answers to a registry tool's name.
MISBEHAVING = {
    "check-service-area": "import time\n\ndef lambda_handler(event, context):\n    time.sleep(5)\n    "
                          "return {'ok': True, 'output': {}}\n",
    "search-knowledge": "def lambda_handler(event, context):\n    raise RuntimeError('index unreadable')\n",
    "take-message": "def lambda_handler(event, context):\n    return {'saved': 'probably'}\n",
}


def _template(tmp_path: Path) -> Path:
    """Real get_pricing, the misbehaving functions, and a cancel_appointment with no concurrency left."""
    resources = {"GetPricing": ("voiceline-get-pricing", ROOT / "functions" / "get_pricing", 2),
                 "CancelAppointment": ("voiceline-cancel-appointment", ROOT / "functions" / "cancel_appointment", 0)}
    for short_name, code in MISBEHAVING.items():
        (tmp_path / short_name).mkdir()
        (tmp_path / short_name / "app.py").write_text(code)
        resources[short_name.title().replace("-", "")] = (f"voiceline-{short_name}", tmp_path / short_name, 2)
    lines = ['AWSTemplateFormatVersion: "2010-09-09"', "Transform: AWS::Serverless-2016-10-31",
             "Globals:", "  Function: {Runtime: python3.13, Handler: app.lambda_handler, Timeout: 10}", "Resources:"]
    for logical_id, (function_name, code_dir, concurrency) in resources.items():
        lines += [f"  {logical_id}:", "    Type: AWS::Serverless::Function",
                  f"    Properties: {{FunctionName: {function_name}, CodeUri: {code_dir},"
                  f" ReservedConcurrentExecutions: {concurrency}}}"]
    path = tmp_path / "template.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _conversation(tmp_path: Path, greeting_tool_calls: list[dict[str, Any]]) -> ScriptedModelServer:
    """A model whose first response makes `greeting_tool_calls`, then speaks one line."""
    (tmp_path / "line.ulaw").write_bytes(CLIP)
    path = tmp_path / "conversation.json"
    path.write_text(json.dumps({"greeting": {"text": "Here is what I found.", "audio": "line.ulaw",
                                             "tool_calls": greeting_tool_calls}, "turns": []}))
    return ScriptedModelServer(load_script(path, tmp_path), port=0)


@pytest.fixture
async def tool_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The gateway's Lambda Invoke API for the test template, where the bridge's boto3 client finds it."""
    async with serving(build_app(_template(tmp_path)), lifespan="off") as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", url)
        yield url


def _demo_call(call_sid: str, **agent_fields: Any) -> None:
    """The seeded demo business, with the agent's tools and transfer number as the test needs them."""
    seed()
    agent = Agent.get(DEMO_AGENT)
    for name, value in agent_fields.items():
        setattr(agent, name, value)
    agent.save()
    calls.create_call(call_sid, DEMO_TENANT, DEMO_AGENT, CALLER, BUSINESS_NUMBER)


def _tool_events(call_sid: str) -> dict[str, dict[str, Any]]:
    return {event.data["name"]: event.data for event in calls.list_events(call_sid) if event.kind == "tool_call"}


async def test_tool_failures_become_error_outputs_run_together_and_the_call_goes_on(
        dynamodb: None, tool_functions: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _demo_call("CA201", tools=["get_pricing", "book_appointment", "check_service_area", "search_knowledge",
                               "take_message", "cancel_appointment"])
    made = [
        {"name": "get_pricing", "arguments": {"service": "leaking tap"}},
        {"name": "book_appointment", "arguments": {"service": "tap repair", "slot_start": "next tuesday"}},
        {"name": "check_service_area", "arguments": {"postcode": "10001"}},
        {"name": "search_knowledge", "arguments": {"query": "card payments"}},
        {"name": "take_message", "arguments": {"message": "Call me back", "callback_requested": True}},
        {"name": "cancel_appointment", "arguments": {"confirmation_code": "ABC234"}},
    ]
    async with _conversation(tmp_path, made) as model, running_bridge(model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA201", "agent-demo", DEMO_TENANT) as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=20))
        started = time.monotonic()
        await asyncio.wait_for(leg.first_media.wait(), 10)  # the line after the tool round reached the caller
        tool_round_s = time.monotonic() - started
        await leg.hang_up()
        assert await listening == 1000

    [session] = model.sessions
    outputs = {call["name"]: output["output"] for call in session.record.tool_calls
               for output in session.record.tool_outputs if output["call_id"] == call["call_id"]}
    assert outputs["get_pricing"]["ok"] is True and outputs["get_pricing"]["output"]["price"] == 95.0
    assert outputs["book_appointment"]["error"]["type"] == "invalid_arguments"
    assert "customer_name: required" in outputs["book_appointment"]["error"]["message"]
    assert "slot_start: 'next tuesday' is not a valid local date and time" in \
        outputs["book_appointment"]["error"]["message"]
    assert {name: outputs[name]["error"]["type"] for name in
            ("check_service_area", "search_knowledge", "take_message", "cancel_appointment")} == {
        "check_service_area": "timeout", "search_knowledge": "lambda_error", "take_message": "bad_reply",
        "cancel_appointment": "throttled"}
    assert all("Apologise" in outputs[name]["error"]["message"] for name in ("check_service_area", "take_message"))
    assert "index unreadable" not in json.dumps(outputs)  # the model never sees a stack trace
    # Together, not one after another: the 3 s timeout bounds the round, not the sum of the calls.
    assert tool_round_s < 5

    call = await ended_call("CA201")
    assert call.end_reason == "caller_hung_up"
    events = _tool_events("CA201")
    assert {name: data["outcome"] for name, data in events.items()} == {
        "get_pricing": "ok", "book_appointment": "invalid_arguments", "check_service_area": "timeout",
        "search_knowledge": "lambda_error", "take_message": "bad_reply", "cancel_appointment": "throttled"}
    assert events["get_pricing"]["arguments"] == {"service": "leaking tap"}
    assert events["check_service_area"]["duration_ms"] >= 2900
    assert call.tool_calls == 6
    assert call.tools["check_service_area"]["failed"] == 1 and call.tools["get_pricing"]["failed"] == 0


async def test_the_model_is_given_exactly_the_agents_tools_and_the_lambda_gets_the_bridges_call_context(
        dynamodb: None, tool_functions: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _demo_call("CA202", tools=["get_pricing", "no_such_tool"])
    # A tool the agent does not have is never offered, so a model cannot call it.
    made = [{"name": "get_pricing", "arguments": {"service": "boiler service"}},
            {"name": "search_knowledge", "arguments": {"query": "guarantee"}}]
    async with _conversation(tmp_path, made) as model, running_bridge(model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA202", "agent-demo", DEMO_TENANT) as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=20))
        await asyncio.wait_for(leg.first_media.wait(), 10)
        await leg.hang_up()
        await listening

    [session] = model.sessions
    assert [tool["name"] for tool in session.record.session["tools"]] == ["get_pricing"]
    assert session.record.undeclared_tool_calls == ["search_knowledge"]
    [output] = session.record.tool_outputs
    assert output["output"]["ok"] is True and output["output"]["output"]["price"] == 149.0
    await ended_call("CA202")
    [event] = [e for e in calls.list_events("CA202") if e.kind == "tool_call"]
    assert event.data["call_id"] == output["call_id"]


async def test_end_call_hangs_up_only_after_the_goodbye_has_played(
        dynamodb: None, tool_functions: str, twilio_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _demo_call("CA203", tools=["end_call"])
    made = [{"name": "end_call", "arguments": {"reason": "the caller said goodbye"}}]
    async with _conversation(tmp_path, made) as model, running_bridge(model.url, monkeypatch) as url, \
            known_to_twilio(twilio_api, "CA203") as updates, \
            TwilioLeg.open(url, twilio_signer, "CA203", "agent-demo", DEMO_TENANT, hold_marks=True) as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=20))
        await asyncio.wait_for(leg.first_media.wait(), 10)  # the goodbye is being sent
        await asyncio.sleep(0.5)  # all of it has been sent, none of it heard
        assert updates.end is None, "hung up before the goodbye was heard"
        await leg.release_marks()
        assert await listening == 1000

    assert updates.end is not None and updates.end.ended_by == "agent_hung_up"
    [session] = model.sessions
    [output] = session.record.tool_outputs
    assert output["output"]["ok"] is True
    assert session.record.responses == 2  # the function call, then the goodbye the bridge asked for
    call = await ended_call("CA203")
    assert call.end_reason == "agent_hung_up"
    [hang_up] = [e for e in calls.list_events("CA203") if e.kind == "hang_up"]
    assert hang_up.data["outcome"] == "updated" and hang_up.data["reason"] == "the caller said goodbye"


async def test_transfer_call_dials_the_agents_transfer_number_with_the_callers_id(
        dynamodb: None, tool_functions: str, twilio_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _demo_call("CA204", tools=["transfer_call"], transfer_number=TRANSFER_NUMBER)
    made = [{"name": "transfer_call", "arguments": {"reason": "wants a quote for a new bathroom"}}]
    async with _conversation(tmp_path, made) as model, running_bridge(model.url, monkeypatch) as url, \
            known_to_twilio(twilio_api, "CA204") as updates, \
            TwilioLeg.open(url, twilio_signer, "CA204", "agent-demo", DEMO_TENANT) as leg:
        assert await leg.run_until_closed(timeout_s=20) == 1000

    assert updates.end is not None
    assert (updates.end.ended_by, updates.end.transferred_to, updates.end.transfer_caller_id) == (
        "transferred", TRANSFER_NUMBER, CALLER)
    assert any(message["event"] == "media" for message in leg.received)  # the handoff line was played first
    call = await ended_call("CA204")
    assert call.end_reason == "transferred"
    [transfer] = [e for e in calls.list_events("CA204") if e.kind == "transfer"]
    assert transfer.data == {"reason": "wants a quote for a new bathroom", "to": TRANSFER_NUMBER,
                             "outcome": "updated", "twilio_code": None, "elapsed_ms": transfer.data["elapsed_ms"]}


async def test_transfer_without_a_transfer_number_tells_the_model_it_is_unavailable(
        dynamodb: None, tool_functions: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    _demo_call("CA205", tools=["transfer_call"], transfer_number=None)
    made = [{"name": "transfer_call", "arguments": {"reason": "asked for a person"}}]
    async with _conversation(tmp_path, made) as model, running_bridge(model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA205", "agent-demo", DEMO_TENANT) as leg:
        listening = asyncio.create_task(leg.run_until_closed(timeout_s=20))
        await asyncio.wait_for(leg.first_media.wait(), 10)  # the call went on: the model spoke after
        await leg.hang_up()
        await listening

    [session] = model.sessions
    [output] = session.record.tool_outputs
    assert output["output"]["error"]["type"] == "unavailable"
    assert (await ended_call("CA205")).end_reason == "caller_hung_up"


async def test_a_known_caller_is_looked_up_at_call_start_for_the_instructions(
        dynamodb: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    real_lookup = tmp_path / "lookup.yaml"
    real_lookup.write_text(textwrap.dedent(f"""\
        AWSTemplateFormatVersion: "2010-09-09"
        Transform: AWS::Serverless-2016-10-31
        Resources:
          LookupCustomer:
            Type: AWS::Serverless::Function
            Properties: {{FunctionName: voiceline-lookup-customer, CodeUri: {ROOT / "functions" / "lookup_customer"},
                         Handler: app.lambda_handler, Runtime: python3.13}}
        """))
    _demo_call("CA206", tools=["lookup_customer"], instructions="You are talking to {customer_name}.")
    monkeypatch.setenv("CUSTOMER_LOOKUP_BUDGET_S", "10")  # a cold start on a busy test machine is slow
    async with serving(build_app(real_lookup), lifespan="off") as functions_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", functions_url)
        async with _conversation(tmp_path, []) as model, running_bridge(model.url, monkeypatch) as url, \
                TwilioLeg.open(url, twilio_signer, "CA206", "agent-demo", DEMO_TENANT) as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=20))
            await asyncio.wait_for(leg.first_media.wait(), 15)
            await leg.hang_up()
            await listening

    [session] = model.sessions
    assert session.record.session["instructions"] == "You are talking to Jordan Lee."
    await ended_call("CA206")
    [lookup] = [e for e in calls.list_events("CA206") if e.kind == "tool_call"]
    assert lookup.data["call_id"] == "call-start" and lookup.data["output"]["output"]["name"] == "Jordan Lee"

