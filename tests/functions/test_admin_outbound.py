"""POST /api/calls through the local gateway over HTTP: Twilio (the stand-in) rings the callee (the call simulator)
from the agent's number, the voice webhook answers with the agent or with answering machine handling, and the Call
record says outbound with the variables, what answered, and how it ended."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.functions.admin_api import create_agent
from tests.functions.admin_twilio import (
    SEEDED_NUMBER,
    TwilioWorld,
    alice_fixture,  # noqa: F401 (the alice fixture)
    wait_until,
    world_fixture,  # noqa: F401 (the world fixture)
)
from voiceline.calls import get_call
from voiceline.models import Call, PhoneNumber

CALLEE = "+15557654321"
VOICEMAIL = "Hi, this is {business_name}: your boiler service is at {appointment_time}. Call us back to change it."


def agent_with_number(world: TwilioWorld, client: httpx.Client, number: str = "+14155550101",
                      **settings: Any) -> dict[str, Any]:
    agent = create_agent(client, template_variables=["appointment_time"], **settings)
    bought = client.post("/api/numbers", json={"phone_number": number, "agent_id": agent["agent_id"]})
    assert bought.status_code == 201, bought.text
    return agent


def place(client: httpx.Client, agent_id: str, to: str = CALLEE, **body: Any) -> httpx.Response:
    return client.post("/api/calls", json={"agent_id": agent_id, "to": to, **body})


def test_an_outbound_call_rings_the_callee_from_the_agents_number_and_is_recorded_outbound(
        world: TwilioWorld, alice: httpx.Client) -> None:
    agent = agent_with_number(world, alice)

    response = place(alice, agent["agent_id"], variables={"appointment_time": "10am"})

    assert response.status_code == 201, response.text
    placed = response.json()
    assert response.headers["location"] == f"/api/calls/{placed['call_sid']}"
    assert placed == {"call_sid": placed["call_sid"], "agent_id": agent["agent_id"], "from_number": "+14155550101",
                      "to_number": CALLEE, "direction": "outbound", "twilio_status": "queued",
                      "machine_detection": None}
    outcome = world.call_outcome(placed["call_sid"])
    report = outcome["report"]
    assert (outcome["call"]["from"], outcome["call"]["to"], outcome["call"]["direction"]) == (
        "+14155550101", CALLEE, "outbound-api")
    assert report["voice_webhook_code"] == 200 and report["status_callback_code"] == 204
    assert report["stream_parameters"]["agentId"] == agent["agent_id"]  # put through to the agent
    assert outcome["call"]["answered_by"] is None  # no detection was asked for

    call = get_call(placed["call_sid"])
    assert call is not None
    assert (call.direction, call.tenant_id, call.agent_id, call.from_number, call.to_number) == (
        "outbound", "tenant-a", agent["agent_id"], "+14155550101", CALLEE)
    assert (call.variables, call.twilio_status, call.answered_by) == ({"appointment_time": "10am"}, "completed", None)


def test_an_agent_that_hangs_up_on_machines_asks_twilio_to_detect_them(world: TwilioWorld,
                                                                       alice: httpx.Client) -> None:
    agent = agent_with_number(world, alice, answering_machine="hang_up")
    world.callee(CALLEE, "machine")

    placed = place(alice, agent["agent_id"]).json()

    assert placed["machine_detection"] == "Enable"
    outcome = world.call_outcome(placed["call_sid"])
    assert outcome["call"]["answered_by"] == "machine_start"
    assert (outcome["report"]["outcome"], outcome["report"]["spoken_text"]) == ("rejected", "")
    call = get_call(placed["call_sid"])
    assert call is not None
    assert (call.answered_by, call.status, call.end_reason, call.twilio_status) == (
        "machine_start", "ended", "answering_machine", "completed")


def test_an_agent_that_leaves_messages_waits_for_the_beep_and_says_its_voicemail(world: TwilioWorld,
                                                                                alice: httpx.Client) -> None:
    agent = agent_with_number(world, alice, answering_machine="leave_message", voicemail_message=VOICEMAIL)
    world.callee(CALLEE, "machine")

    placed = place(alice, agent["agent_id"], variables={"appointment_time": "10am"}).json()

    assert placed["machine_detection"] == "DetectMessageEnd"
    outcome = world.call_outcome(placed["call_sid"])
    assert outcome["call"]["answered_by"] == "machine_end_beep"
    assert outcome["report"]["spoken_text"] == ("Hi, this is Bright Plumbing: your boiler service is at 10am. "
                                                "Call us back to change it.")
    call = get_call(placed["call_sid"])
    assert call is not None and (call.answered_by, call.end_reason) == ("machine_end_beep", "voicemail_left")


def test_a_person_answering_with_detection_on_is_put_through_to_the_agent(world: TwilioWorld,
                                                                          alice: httpx.Client) -> None:
    agent = agent_with_number(world, alice, answering_machine="leave_message", voicemail_message=VOICEMAIL)

    placed = place(alice, agent["agent_id"]).json()

    outcome = world.call_outcome(placed["call_sid"])
    assert outcome["report"]["stream_parameters"]["agentId"] == agent["agent_id"]
    assert get_call(placed["call_sid"]).answered_by == "human"  # type: ignore[union-attr]


def test_a_callee_who_never_answers_leaves_twilios_status_on_the_record(world: TwilioWorld,
                                                                        alice: httpx.Client) -> None:
    agent = agent_with_number(world, alice)
    world.callee(CALLEE, "busy")

    placed = place(alice, agent["agent_id"]).json()

    assert world.call_outcome(placed["call_sid"])["call"]["status"] == "busy"
    call = get_call(placed["call_sid"])
    assert call is not None and (call.direction, call.twilio_status, call.status) == ("outbound", "busy", "ringing")


# ---- refusals --------------------------------------------------------------------------------------------------


def test_another_tenants_agent_cannot_place_calls(world: TwilioWorld, alice: httpx.Client) -> None:
    bob = world.api.as_tenant("tenant-b")
    bobs_agent = agent_with_number(world, bob)
    response = place(alice, bobs_agent["agent_id"])
    assert (response.status_code, response.json()["detail"]) == (404, "agent not found")
    assert list(Call.scan()) == []


def test_an_agent_without_a_number_or_disabled_cannot_place_calls(world: TwilioWorld, alice: httpx.Client) -> None:
    numberless = create_agent(alice)
    response = place(alice, numberless["agent_id"])
    assert response.status_code == 409 and "no phone number" in response.json()["detail"]

    disabled = agent_with_number(world, alice, enabled=False)
    response = place(alice, disabled["agent_id"])
    assert response.status_code == 409 and "disabled" in response.json()["detail"]
    assert list(Call.scan()) == []


def test_variables_the_agent_does_not_declare_are_a_422_per_variable(world: TwilioWorld,
                                                                     alice: httpx.Client) -> None:
    agent = agent_with_number(world, alice)
    response = place(alice, agent["agent_id"], variables={"appointment_time": "10am", "colour": "red"})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "variables", "colour"]]
    assert list(Call.scan()) == []


@pytest.mark.parametrize("body", [{"to": "5557654321"}, {"variables": {"Bad Name": "x"}},
                                  {"variables": {"appointment_time": 10}}, {"colour": "red"}],
                         ids=["to-not-e164", "bad-variable-name", "variable-not-text", "unknown-field"])
def test_a_malformed_request_is_a_422(world: TwilioWorld, alice: httpx.Client, body: dict[str, Any]) -> None:
    agent = agent_with_number(world, alice)
    assert place(alice, agent["agent_id"], **body).status_code == 422


def test_a_number_twilio_does_not_have_cannot_be_the_caller_id(world: TwilioWorld, alice: httpx.Client) -> None:
    agent = create_agent(alice)
    PhoneNumber("+14155550150", tenant_id="tenant-a", agent_id=agent["agent_id"]).save()  # recorded, never bought
    response = place(alice, agent["agent_id"])
    assert (response.status_code, response.json()["twilio_code"]) == (409, 21210)
    assert list(Call.scan()) == []


@pytest.mark.parametrize(("fault", "status", "code"), [
    ({"status": 500, "code": 20500}, 502, 20500),
    ({"delay_s": 2.5, "status": 500}, 504, None),
], ids=["twilio-5xx", "twilio-timeout"])
def test_a_call_twilio_fails_to_place_leaves_no_record(world: TwilioWorld, alice: httpx.Client,
                                                      fault: dict[str, Any], status: int, code: int | None) -> None:
    agent = agent_with_number(world, alice)
    world.fault("POST", "/Calls.json", **fault)
    response = place(alice, agent["agent_id"])
    assert (response.status_code, response.json()["twilio_code"]) == (status, code), response.text
    assert list(Call.scan()) == []


def test_a_call_that_cannot_be_recorded_is_hung_up_again(world: TwilioWorld, alice: httpx.Client) -> None:
    agent = agent_with_number(world, alice)
    world.callee(CALLEE, "no-answer")  # the phone rings on while the record fails
    Call.delete_table()

    response = place(alice, agent["agent_id"])

    assert response.status_code == 503, response.text
    placed = [call for call in world.stand_in.calls.values() if call.dialled_here]
    assert len(placed) == 1
    wait_until(lambda: {"Status": "completed"} in placed[0].updates, "the call to be hung up")


def test_the_seeded_demo_number_can_place_calls_once_imported(world: TwilioWorld, alice: httpx.Client) -> None:
    agent = create_agent(alice)
    imported = alice.post("/api/numbers/import", json={"phone_number": SEEDED_NUMBER, "agent_id": agent["agent_id"]})
    assert imported.status_code == 201, imported.text
    placed = place(alice, agent["agent_id"])
    assert (placed.status_code, placed.json()["from_number"]) == (201, SEEDED_NUMBER)
