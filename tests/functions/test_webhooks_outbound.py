"""The voice webhook on an outbound call: the record the admin API wrote is kept, and Twilio's answering machine
detection (AnsweredBy) decides between the agent, a voicemail message and a hang-up."""

from __future__ import annotations

import base64
import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from local.gateway import import_module_from
from voiceline import calls
from voiceline.calls import get_call
from voiceline.models import Agent, PhoneNumber

ROOT = Path(__file__).resolve().parents[2]
webhooks = import_module_from(ROOT / "functions" / "webhooks" / "app.py", "webhooks_outbound_app")

API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"
CALL_SID = "CA" + "b" * 32
TENANT, AGENT, OUR_NUMBER, CALLEE = "tenant-out", "agent-out", "+14155550100", "+15557654321"
VOICEMAIL = "Hi, this is {business_name} about your {appointment_time} appointment. Please call us back."


@pytest.fixture(autouse=True)
def no_custom_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLIC_WEBHOOK_BASE_URL", raising=False)


@pytest.fixture
def agent(dynamodb: None) -> Agent:
    agent = Agent(AGENT, tenant_id=TENANT, name="Ava", business_name="Bright Plumbing", instructions="Be brief.",
                  greeting="Hello!", template_variables=["appointment_time"], voicemail_message=VOICEMAIL)
    agent.save()
    PhoneNumber(OUR_NUMBER, agent_id=AGENT, tenant_id=TENANT).save()
    return agent


def outbound_voice_event(signer: Any, **changes: str) -> dict[str, Any]:
    """Twilio's voice webhook once the callee picked up a call our API placed, signed by Twilio."""
    event = copy.deepcopy(json.loads((ROOT / "events" / "webhooks" / "voice.json").read_text()))
    form = dict(parse_qsl(base64.b64decode(event["body"]).decode(), keep_blank_values=True))
    form.update({"CallSid": CALL_SID, "Direction": "outbound-api", "From": OUR_NUMBER, "Caller": OUR_NUMBER,
                 "To": CALLEE, "Called": CALLEE, "CallStatus": "in-progress", **changes})
    event["body"] = base64.b64encode(urlencode(form).encode()).decode()
    event["headers"]["x-twilio-signature"] = signer.sign(API_URL + "/twilio/voice", form)
    return event


def verbs(result: dict[str, Any]) -> list[ET.Element]:
    assert (result["statusCode"], result["headers"]["Content-Type"]) == (200, "text/xml"), result
    return list(ET.fromstring(result["body"]))


def set_answering_machine(agent: Agent, setting: str) -> None:
    agent.update(actions=[Agent.answering_machine.set(setting)])


def test_the_webhook_keeps_what_the_admin_api_recorded_when_it_placed_the_call(
        agent: Agent, lambda_context: Any, twilio_signer: Any) -> None:
    calls.create_call(CALL_SID, TENANT, AGENT, OUR_NUMBER, CALLEE, "outbound",
                      variables={"appointment_time": "10am"})
    placed = get_call(CALL_SID)

    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer), lambda_context)

    assert [verb.tag for verb in verbs(result)] == ["Connect"]
    call = get_call(CALL_SID)
    assert call is not None and placed is not None
    assert (call.direction, call.from_number, call.to_number, call.status) == ("outbound", OUR_NUMBER, CALLEE,
                                                                              "ringing")
    assert (call.variables, call.started_at, call.answered_by) == ({"appointment_time": "10am"}, placed.started_at,
                                                                   None)


@pytest.mark.parametrize("answered_by", ["human", "unknown"])
@pytest.mark.parametrize("setting", ["hang_up", "leave_message"])
def test_a_person_or_an_undecided_detection_is_put_through_to_the_agent(
        agent: Agent, lambda_context: Any, twilio_signer: Any, answered_by: str, setting: str) -> None:
    set_answering_machine(agent, setting)

    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer, AnsweredBy=answered_by), lambda_context)

    connect = verbs(result)
    assert [verb.tag for verb in connect] == ["Connect"]
    assert connect[0].find("Stream/Parameter[@name='agentId']").attrib["value"] == AGENT  # type: ignore[union-attr]
    assert get_call(CALL_SID).answered_by == answered_by  # type: ignore[union-attr]


@pytest.mark.parametrize("answered_by", ["machine_start", "machine_end_beep", "fax"])
def test_an_agent_set_to_hang_up_on_machines_hangs_up(agent: Agent, lambda_context: Any, twilio_signer: Any,
                                                       answered_by: str) -> None:
    set_answering_machine(agent, "hang_up")

    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer, AnsweredBy=answered_by), lambda_context)

    assert [verb.tag for verb in verbs(result)] == ["Hangup"]
    call = get_call(CALL_SID)
    assert call is not None
    assert (call.answered_by, call.status, call.end_reason, call.duration_s) == (answered_by, "ended",
                                                                                 "answering_machine", 0)


@pytest.mark.parametrize("answered_by", ["machine_end_beep", "machine_end_silence", "machine_end_other"])
def test_an_agent_set_to_leave_a_message_says_its_voicemail_after_the_beep_then_hangs_up(
        agent: Agent, lambda_context: Any, twilio_signer: Any, answered_by: str) -> None:
    set_answering_machine(agent, "leave_message")
    calls.create_call(CALL_SID, TENANT, AGENT, OUR_NUMBER, CALLEE, "outbound", variables={"appointment_time": "10am"})

    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer, AnsweredBy=answered_by), lambda_context)

    say, hangup = verbs(result)
    assert (say.tag, hangup.tag) == ("Say", "Hangup")
    assert say.text == "Hi, this is Bright Plumbing about your 10am appointment. Please call us back."
    call = get_call(CALL_SID)
    assert call is not None and (call.answered_by, call.end_reason) == (answered_by, "voicemail_left")


def test_a_fax_gets_no_voicemail_message(agent: Agent, lambda_context: Any, twilio_signer: Any) -> None:
    set_answering_machine(agent, "leave_message")

    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer, AnsweredBy="fax"), lambda_context)

    assert [verb.tag for verb in verbs(result)] == ["Hangup"]
    assert get_call(CALL_SID).end_reason == "answering_machine"  # type: ignore[union-attr]


def test_without_a_voicemail_message_the_machine_is_hung_up_on(agent: Agent, lambda_context: Any,
                                                                 twilio_signer: Any) -> None:
    agent.update(actions=[Agent.answering_machine.set("leave_message"), Agent.voicemail_message.remove()])

    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer, AnsweredBy="machine_end_beep"),
                                     lambda_context)

    assert [verb.tag for verb in verbs(result)] == ["Hangup"]


def test_with_detection_off_a_machine_is_talked_to_like_a_person(agent: Agent, lambda_context: Any,
                                                                  twilio_signer: Any) -> None:
    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer, AnsweredBy="machine_start"),
                                     lambda_context)

    assert [verb.tag for verb in verbs(result)] == ["Connect"]


def test_answered_by_on_an_inbound_call_means_nothing(agent: Agent, lambda_context: Any, twilio_signer: Any) -> None:
    set_answering_machine(agent, "hang_up")
    event = outbound_voice_event(twilio_signer, Direction="inbound", From=CALLEE, Caller=CALLEE, To=OUR_NUMBER,
                                 Called=OUR_NUMBER, AnsweredBy="machine_start")

    result = webhooks.lambda_handler(event, lambda_context)

    assert [verb.tag for verb in verbs(result)] == ["Connect"]
    assert get_call(CALL_SID).answered_by is None  # type: ignore[union-attr]


def test_a_number_assigned_to_no_agent_is_not_in_service(agent: Agent, lambda_context: Any,
                                                         twilio_signer: Any) -> None:
    PhoneNumber(OUR_NUMBER, tenant_id=TENANT).save()  # bought, not yet assigned

    result = webhooks.lambda_handler(outbound_voice_event(twilio_signer), lambda_context)

    say, _ = verbs(result)
    assert "not in service" in (say.text or "")
    assert get_call(CALL_SID) is None


def test_the_sample_event_is_an_outbound_call_a_machine_answered(agent: Agent, lambda_context: Any) -> None:
    sample = json.loads((ROOT / "events" / "webhooks" / "voice_outbound_machine.json").read_text())
    form = dict(parse_qsl(base64.b64decode(sample["body"]).decode()))
    assert (form["Direction"], form["AnsweredBy"]) == ("outbound-api", "machine_end_beep")
    assert webhooks.lambda_handler(sample, lambda_context)["statusCode"] == 200
