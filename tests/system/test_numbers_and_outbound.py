"""Numbers and outbound calls through the whole local stack: the admin API on the gateway buys and assigns a
number on the Twilio REST stand-in, a call to it reaches the new agent through the bridge and the model, and an
outbound call rings the call simulator as the callee and ends with a complete `outbound` Call record.

The stack's scripted model follows the demo conversation for every session, so the agent says the demo's lines
here; the assertions are about routing, records and who heard what, not the words.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.call_records import CallRecords
from local.call_simulator import CallConfig, place_call
from local.stack import ROOT, LocalStack
from tests.functions.admin_api import AGENT_BODY
from tests.system.conftest import ModelSessions, finalised

pytestmark = pytest.mark.system

TENANT = "tenant-numbers"
CALLEE = "+15557654321"
CALLER = "+15551112222"
VOICEMAIL = "Hi, this is {business_name} about your {appointment_time} visit. Please call us back."
CALL_WAIT_S = 60


@pytest.fixture(scope="module")
def admin(stack: LocalStack) -> Iterator[httpx.Client]:
    """The admin API as a tenant whose key `make admin-key` made, in the stack's own tables."""
    made = subprocess.run([sys.executable, "-m", "local.admin_key", "--tenant", TENANT, "--name", "system-tests"],
                          env=stack.environment(), cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    key = made.stdout.strip()
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
def twilio(stack: LocalStack) -> Iterator[httpx.Client]:
    env = stack.environment()
    with httpx.Client(base_url=stack.twilio_api_url, auth=(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"]),
                      timeout=CALL_WAIT_S + 10) as client:
        yield client


def new_agent(admin: httpx.Client, **settings: Any) -> dict[str, Any]:
    body = {**AGENT_BODY, "business_name": "Zebra Plumbing", "tools": [], "transfer_number": None,
            "instructions": "You are Zed for {business_name}. The caller is {caller_number}.", **settings}
    response = admin.post("/api/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def buy_number(admin: httpx.Client, area_code: str, agent_id: str | None = None) -> str:
    response = admin.post("/api/numbers", json={"area_code": area_code, "agent_id": agent_id})
    assert response.status_code == 201, response.text
    return response.json()["phone_number"]


def on_twilio(stack: LocalStack, twilio: httpx.Client, phone_number: str) -> dict[str, Any]:
    """The account's IncomingPhoneNumber, as Twilio's REST API shows it."""
    account_sid = stack.environment()["TWILIO_ACCOUNT_SID"]
    found = twilio.get(f"/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers.json",
                       params={"PhoneNumber": phone_number}).json()["incoming_phone_numbers"]
    return next(number for number in found if number["phone_number"] == phone_number)


def short_call(tmp_path: Path) -> Path:
    """A caller who says goodbye after the greeting, hears the reply and hangs up."""
    conversation = {"hangs_up": "caller", "greeting": {"text": "Hello.", "audio": "greeting.ulaw"},
                    "turns": [{"caller": {"text": "That's all, thanks, goodbye!", "audio": "demo_caller_5.ulaw"},
                               "agent": {"text": "Goodbye!", "audio": "demo_agent_5.ulaw"}}]}
    path = tmp_path / "short_call.json"
    path.write_text(json.dumps(conversation))
    return path


async def test_a_bought_and_assigned_number_puts_callers_through_to_its_new_agent(
        stack: LocalStack, admin: httpx.Client, twilio: httpx.Client, records: CallRecords,
        model_sessions: ModelSessions, tmp_path: Path) -> None:
    agent = new_agent(admin)
    number = buy_number(admin, "415")
    assert admin.patch(f"/api/numbers/{number}", json={"agent_id": agent["agent_id"]}).status_code == 200
    voice_url = on_twilio(stack, twilio, number)["voice_url"]
    assert voice_url == f"{stack.gateway_url}/twilio/voice"

    before = model_sessions.all()
    report = await place_call(CallConfig(gateway_url=stack.gateway_url, to_number=number, from_number=CALLER,
                                         voice_url=voice_url, conversation=short_call(tmp_path),
                                         twilio_api_url=stack.twilio_api_url, on_line=lambda line: None,
                                         max_call_seconds=45))

    assert report.outcome == "completed", report.error
    assert report.stream_parameters["agentId"] == agent["agent_id"]
    assert report.greeting_started_ms is not None  # the agent was heard
    [session] = model_sessions.opened_since(before)
    assert "You are Zed for Zebra Plumbing" in session["session"]["instructions"]
    call = await finalised(records, report.call_sid)
    assert (call["tenant_id"], call["agent_id"], call["direction"], call["to_number"]) == (
        TENANT, agent["agent_id"], "inbound", number)


async def test_an_outbound_call_reaches_the_callee_and_its_record_is_outbound_and_complete(
        stack: LocalStack, admin: httpx.Client, twilio: httpx.Client, records: CallRecords) -> None:
    agent = new_agent(admin, template_variables=["appointment_time"], answering_machine="leave_message",
                      voicemail_message=VOICEMAIL)
    number = buy_number(admin, "212", agent["agent_id"])

    response = admin.post("/api/calls", json={"agent_id": agent["agent_id"], "to": CALLEE,
                                              "variables": {"appointment_time": "10am"}})
    assert response.status_code == 201, response.text
    call_sid = response.json()["call_sid"]
    outcome = twilio.get(f"/local/calls/{call_sid}", params={"wait": CALL_WAIT_S}).json()

    assert outcome["settled"], outcome
    report = outcome["report"]
    assert report["outcome"] == "completed", report
    assert report["ended_by"] in ("caller_hung_up", "agent_hung_up")
    assert report["stream_parameters"]["agentId"] == agent["agent_id"]
    assert report["turns"][0]["caller_text"] == "Hello?"  # the callee spoke first
    assert report["agent_audio_played_ms"] > 0  # and heard the agent
    assert outcome["call"]["answered_by"] == "human"

    call = await finalised(records, call_sid)
    assert (call["direction"], call["status"], call["from_number"], call["to_number"]) == (
        "outbound", "ended", number, CALLEE)
    assert (call["tenant_id"], call["agent_id"], json.loads(call["variables"]), call["answered_by"]) == (
        TENANT, agent["agent_id"], {"appointment_time": "10am"}, "human")
    assert call["twilio_status"] == "completed" and call["end_reason"] and call["duration_s"] > 0
    history = admin.get(f"/api/calls/{call_sid}")
    assert history.status_code == 200 and history.json()["direction"] == "outbound"


async def test_an_outbound_call_a_machine_answers_gets_the_voicemail_message(
        stack: LocalStack, admin: httpx.Client, twilio: httpx.Client, records: CallRecords) -> None:
    agent = new_agent(admin, template_variables=["appointment_time"], answering_machine="leave_message",
                      voicemail_message=VOICEMAIL)
    buy_number(admin, "312", agent["agent_id"])
    machine = "+15557650000"
    assert twilio.put(f"/local/callees/{machine}", json={"answers": "machine"}).status_code == 200

    response = admin.post("/api/calls", json={"agent_id": agent["agent_id"], "to": machine,
                                              "variables": {"appointment_time": "10am"}})
    assert response.status_code == 201, response.text
    call_sid = response.json()["call_sid"]
    outcome = twilio.get(f"/local/calls/{call_sid}", params={"wait": CALL_WAIT_S}).json()

    assert outcome["call"]["answered_by"] == "machine_end_beep"
    assert outcome["report"]["spoken_text"] == "Hi, this is Zebra Plumbing about your 10am visit. Please call us back."
    call = await finalised(records, call_sid)
    assert (call["direction"], call["end_reason"], call["answered_by"], call["twilio_status"]) == (
        "outbound", "voicemail_left", "machine_end_beep", "completed")
