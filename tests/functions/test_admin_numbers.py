"""/api/numbers through the local gateway over HTTP, with the Twilio REST stand-in: search, buy, import, assign,
release; every Twilio or DynamoDB failure halfway leaves the table and Twilio as they were; tenant isolation;
and routing following the table."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from tests.functions.admin_api import create_agent
from tests.functions.admin_twilio import (
    SEEDED_NUMBER,
    TwilioWorld,
    alice_fixture,  # noqa: F401 (the alice fixture)
    all_records,
    record,
    wait_until,
    world_fixture,  # noqa: F401 (the world fixture)
)
from voiceline.calls import get_call
from voiceline.models import PhoneNumber

NOT_IN_SERVICE = "not in service"


@pytest.fixture
def bob(world: TwilioWorld) -> httpx.Client:
    return world.api.as_tenant("tenant-b")


def buy(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/api/numbers", json=body)


def assert_twilio_error(response: httpx.Response, status: int, code: int | None) -> None:
    body = response.json()
    assert (response.status_code, body["twilio_code"]) == (status, code), response.text
    assert body["detail"].startswith("Twilio")


# ---- search ------------------------------------------------------------------------------------


def test_search_finds_numbers_for_sale_by_area_code_and_pattern(world: TwilioWorld, alice: httpx.Client) -> None:
    response = alice.get("/api/numbers/available", params={"area_code": "415", "contains": "010*", "limit": 3})
    assert response.status_code == 200, response.text
    numbers = response.json()["numbers"]
    assert [n["phone_number"] for n in numbers] == ["+14155550100", "+14155550101", "+14155550102"]
    assert (numbers[0]["friendly_name"], numbers[0]["locality"], numbers[0]["iso_country"]) == (
        "(415) 555-0100", "San Francisco", "US")
    assert alice.get("/api/numbers/available", params={"country": "GB"}).json()["numbers"][0]["iso_country"] == "GB"


@pytest.mark.parametrize("query", [{"country": "us"}, {"area_code": "12"}, {"contains": "a b"}, {"limit": 0}])
def test_a_malformed_search_is_refused_before_twilio(world: TwilioWorld, alice: httpx.Client,
                                                     query: dict[str, Any]) -> None:
    assert alice.get("/api/numbers/available", params=query).status_code == 422


def test_a_search_twilio_refuses_keeps_twilios_code(world: TwilioWorld, alice: httpx.Client) -> None:
    assert_twilio_error(alice.get("/api/numbers/available", params={"country": "ZZ"}), 404, 20404)


def test_numbers_need_an_api_key(world: TwilioWorld) -> None:
    anonymous = world.api.client()
    assert anonymous.get("/api/numbers").status_code == 401
    assert anonymous.get("/api/numbers/available").status_code == 401
    assert anonymous.post("/api/numbers", json={"area_code": "415"}).status_code == 401
    assert world.for_sale("+14155550100")


# ---- buy ---------------------------------------------------------------------------------------


def test_buying_a_number_records_it_with_twilio_pointed_at_this_deployment(world: TwilioWorld,
                                                                           alice: httpx.Client) -> None:
    agent = create_agent(alice)
    response = buy(alice, phone_number="+14155550101", agent_id=agent["agent_id"], friendly_name="Front desk")
    assert response.status_code == 201, response.text
    number = response.json()

    on_twilio = world.owned("+14155550101")
    assert on_twilio is not None
    assert (on_twilio["voice_url"], on_twilio["voice_method"]) == (f"{world.gateway_url}/twilio/voice", "POST")
    assert (on_twilio["status_callback"], on_twilio["status_callback_method"]) == (
        f"{world.gateway_url}/twilio/status", "POST")
    assert on_twilio["friendly_name"] == "Front desk"
    assert number == {"phone_number": "+14155550101", "agent_id": agent["agent_id"], "friendly_name": "Front desk",
                      "twilio_sid": on_twilio["sid"], "created_at": number["created_at"]}
    stored = record("+14155550101")
    assert stored is not None
    assert (stored.tenant_id, stored.agent_id, stored.twilio_sid) == ("tenant-a", agent["agent_id"], on_twilio["sid"])
    assert alice.get("/api/numbers").json() == {"numbers": [number]}
    assert alice.get("/api/numbers/+14155550101").json() == number
    assert alice.get("/api/numbers/%2B14155550101").json() == number


def test_buying_by_area_code_takes_whatever_twilio_has_there_unassigned(world: TwilioWorld,
                                                                        alice: httpx.Client) -> None:
    response = buy(alice, area_code="312")
    assert response.status_code == 201, response.text
    assert (response.json()["phone_number"], response.json()["agent_id"]) == ("+13125550100", None)
    assert world.owned("+13125550100") is not None


@pytest.mark.parametrize("body", [{}, {"phone_number": "+14155550100", "area_code": "415"},
                                  {"phone_number": "4155550100"}, {"area_code": "415", "colour": "red"}],
                         ids=["neither", "both", "not-e164", "unknown-field"])
def test_a_malformed_purchase_is_a_422_and_buys_nothing(world: TwilioWorld, alice: httpx.Client,
                                                        body: dict[str, Any]) -> None:
    assert buy(alice, **body).status_code == 422
    assert world.for_sale("+14155550100")


def test_an_agent_of_another_tenant_cannot_be_given_a_number(world: TwilioWorld, alice: httpx.Client,
                                                             bob: httpx.Client) -> None:
    bobs_agent = create_agent(bob)
    response = buy(alice, phone_number="+14155550101", agent_id=bobs_agent["agent_id"])
    assert (response.status_code, response.json()["detail"]) == (404, "agent not found")
    assert world.for_sale("+14155550101") and record("+14155550101") is None


# The purchase fails at Twilio: nothing is recorded and nothing is bought.
TWILIO_FAILURES = [
    ({"phone_number": "+19995550100"}, None, 409, 21422),
    ({"area_code": "907"}, None, 409, 21452),
    ({"phone_number": "+14155550101"}, {"status": 500, "code": 20500}, 502, 20500),
    ({"phone_number": "+14155550101"}, {"status": 429, "code": 20429, "message": "Too many requests"}, 503, 20429),
]


@pytest.mark.parametrize(("body", "fault", "status", "code"), TWILIO_FAILURES,
                         ids=["not-for-sale", "area-code-empty", "twilio-5xx", "twilio-rate-limit"])
def test_a_purchase_twilio_refuses_records_nothing(world: TwilioWorld, alice: httpx.Client, body: dict[str, Any],
                                                   fault: dict[str, Any] | None, status: int, code: int) -> None:
    if fault is not None:
        world.fault("POST", "/IncomingPhoneNumbers.json", **fault)
    assert_twilio_error(buy(alice, **body), status, code)
    assert all_records() == {}
    assert world.owned(body.get("phone_number", "+1907")) is None


def test_a_purchase_twilio_does_not_answer_in_time_is_a_504_and_records_nothing(world: TwilioWorld,
                                                                                alice: httpx.Client) -> None:
    world.fault("POST", "/IncomingPhoneNumbers.json", delay_s=2.5)
    response = buy(alice, phone_number="+14155550101")
    assert (response.status_code, response.json()["twilio_code"]) == (504, None)
    assert "did not answer" in response.json()["detail"]
    assert all_records() == {}


@pytest.mark.parametrize("owner", ["tenant-a", "tenant-b"])
def test_a_number_already_recorded_is_refused_before_paying_for_it(world: TwilioWorld, alice: httpx.Client,
                                                                   owner: str) -> None:
    PhoneNumber("+14155550101", tenant_id=owner).save()
    before = all_records()
    response = buy(alice, phone_number="+14155550101")
    assert (response.status_code, response.json()["detail"]) == (409, "+14155550101 is already in use")
    assert all_records() == before
    assert world.for_sale("+14155550101")  # Twilio was never asked


def test_a_number_twilio_sold_but_the_table_refuses_is_released_again(world: TwilioWorld,
                                                                      alice: httpx.Client) -> None:
    # A stale record for the number Twilio sells next in 212: the conditional write refuses it after the purchase.
    PhoneNumber("+12125550100", tenant_id="tenant-b", agent_id="agent-b").save()
    before = all_records()
    response = buy(alice, area_code="212")
    assert (response.status_code, response.json()["detail"]) == (409, "+12125550100 is already in use")
    assert all_records() == before
    assert world.owned("+12125550100") is None and world.for_sale("+12125550100")


def test_a_purchase_the_database_cannot_record_is_released_again(world: TwilioWorld, alice: httpx.Client) -> None:
    PhoneNumber.delete_table()  # DynamoDB failing after Twilio has sold the number
    response = buy(alice, area_code="212")
    assert response.status_code == 503, response.text
    assert world.owned("+12125550100") is None and world.for_sale("+12125550100")


def test_when_releasing_the_unrecorded_number_fails_too_the_answer_says_what_to_do(world: TwilioWorld,
                                                                                    alice: httpx.Client) -> None:
    PhoneNumber("+12125550100", tenant_id="tenant-b").save()
    world.fault("DELETE", ".json", status=500, code=20500)
    response = buy(alice, area_code="212")
    assert response.status_code == 502, response.text
    assert "release +12125550100" in response.json()["detail"] and "by hand" in response.json()["detail"]
    assert record("+12125550100").tenant_id == "tenant-b"  # type: ignore[union-attr]


# ---- import ------------------------------------------------------------------------------------


def test_importing_an_owned_number_points_its_webhooks_here_and_records_it(world: TwilioWorld,
                                                                           alice: httpx.Client) -> None:
    owned = world.buy_on_twilio("+14155550110", VoiceUrl="https://old.example.com/voice")
    agent = create_agent(alice)
    response = alice.post("/api/numbers/import", json={"phone_number": "+14155550110", "agent_id": agent["agent_id"]})
    assert response.status_code == 201, response.text
    assert (response.json()["twilio_sid"], response.json()["agent_id"]) == (owned["sid"], agent["agent_id"])
    on_twilio = world.owned("+14155550110")
    assert on_twilio is not None
    assert (on_twilio["voice_url"], on_twilio["status_callback"]) == (f"{world.gateway_url}/twilio/voice",
                                                                      f"{world.gateway_url}/twilio/status")


def test_importing_a_number_the_account_does_not_own_is_a_404(world: TwilioWorld, alice: httpx.Client) -> None:
    response = alice.post("/api/numbers/import", json={"phone_number": "+14155550110"})
    assert response.status_code == 404
    assert "does not own" in response.json()["detail"]
    assert all_records() == {}


def test_importing_a_number_already_recorded_changes_nothing_on_twilio(world: TwilioWorld,
                                                                       alice: httpx.Client) -> None:
    world.buy_on_twilio("+14155550110", VoiceUrl="https://old.example.com/voice")
    PhoneNumber("+14155550110", tenant_id="tenant-b").save()
    assert alice.post("/api/numbers/import", json={"phone_number": "+14155550110"}).status_code == 409
    assert world.owned("+14155550110")["voice_url"] == "https://old.example.com/voice"  # type: ignore[index]


def test_an_import_twilio_fails_to_repoint_records_nothing(world: TwilioWorld, alice: httpx.Client) -> None:
    owned = world.buy_on_twilio("+14155550110", VoiceUrl="https://old.example.com/voice")
    world.fault("POST", f"/IncomingPhoneNumbers/{owned['sid']}.json", status=500, code=20500)
    assert_twilio_error(alice.post("/api/numbers/import", json={"phone_number": "+14155550110"}), 502, 20500)
    assert all_records() == {}
    assert world.owned("+14155550110")["voice_url"] == "https://old.example.com/voice"  # type: ignore[index]


def test_an_import_that_loses_a_race_for_the_record_puts_the_old_webhooks_back(world: TwilioWorld,
                                                                               alice: httpx.Client) -> None:
    owned = world.buy_on_twilio("+14155550110", VoiceUrl="https://old.example.com/voice",
                                StatusCallback="https://old.example.com/status")
    # Twilio is slow to repoint the number; meanwhile another tenant records it.
    world.fault("POST", f"/IncomingPhoneNumbers/{owned['sid']}.json", delay_s=0.5)
    answer: list[httpx.Response] = []
    importing = threading.Thread(target=lambda: answer.append(
        alice.post("/api/numbers/import", json={"phone_number": "+14155550110"})))
    importing.start()
    wait_until(lambda: world.stand_in.faults[0].times == 0, "the import to reach Twilio")
    PhoneNumber("+14155550110", tenant_id="tenant-b").save()
    importing.join(timeout=10)

    assert answer[0].status_code == 409, answer[0].text
    assert record("+14155550110").tenant_id == "tenant-b"  # type: ignore[union-attr]
    on_twilio = world.owned("+14155550110")
    assert on_twilio is not None
    assert (on_twilio["voice_url"], on_twilio["status_callback"]) == ("https://old.example.com/voice",
                                                                      "https://old.example.com/status")


# ---- assign, isolation -------------------------------------------------------------------------


def test_a_number_is_assigned_reassigned_renamed_and_unassigned(world: TwilioWorld, alice: httpx.Client) -> None:
    first, second = create_agent(alice), create_agent(alice, name="Bea")
    buy(alice, phone_number="+14155550101", friendly_name="Main")
    url = "/api/numbers/+14155550101"

    assigned = alice.patch(url, json={"agent_id": first["agent_id"]})
    assert (assigned.status_code, assigned.json()["agent_id"], assigned.json()["friendly_name"]) == (
        200, first["agent_id"], "Main")
    renamed = alice.patch(url, json={"friendly_name": "Sales"})
    assert (renamed.json()["agent_id"], renamed.json()["friendly_name"]) == (first["agent_id"], "Sales")
    reassigned = alice.patch(url, json={"agent_id": second["agent_id"]})
    assert record("+14155550101").agent_id == reassigned.json()["agent_id"] == second["agent_id"]  # type: ignore
    unassigned = alice.patch(url, json={"agent_id": None})
    assert unassigned.json()["agent_id"] is None and record("+14155550101").agent_id is None  # type: ignore


def test_a_tenant_can_neither_see_nor_change_another_tenants_number(world: TwilioWorld, alice: httpx.Client,
                                                                    bob: httpx.Client) -> None:
    alices_agent, bobs_agent = create_agent(alice), create_agent(bob)
    buy(alice, phone_number="+14155550101", agent_id=alices_agent["agent_id"])
    before = all_records()
    url = "/api/numbers/+14155550101"

    assert bob.get("/api/numbers").json() == {"numbers": []}
    assert bob.get(url).status_code == 404
    assert bob.patch(url, json={"agent_id": bobs_agent["agent_id"]}).status_code == 404
    assert bob.delete(url).status_code == 404
    assert bob.post("/api/numbers/import", json={"phone_number": "+14155550101"}).status_code == 409
    # Nor can Alice point her number at Bob's agent.
    response = alice.patch(url, json={"agent_id": bobs_agent["agent_id"]})
    assert (response.status_code, response.json()["detail"]) == (404, "agent not found")
    assert all_records() == before
    assert world.owned("+14155550101") is not None


@pytest.mark.parametrize("path", ["/api/numbers/15550100", "/api/numbers/+1", "/api/numbers/%2B1555%20"])
def test_a_path_that_is_no_number_is_not_found(world: TwilioWorld, alice: httpx.Client, path: str) -> None:
    assert alice.get(path).status_code == 404
    assert alice.patch(path, json={"agent_id": None}).status_code == 404
    assert alice.delete(path).status_code == 404


# ---- release -----------------------------------------------------------------------------------


async def test_releasing_a_number_stops_routing_and_gives_it_back_to_twilio(world: TwilioWorld,
                                                                            alice: httpx.Client) -> None:
    agent = create_agent(alice)
    buy(alice, phone_number="+14155550101", agent_id=agent["agent_id"])
    assert (await world.inbound_call("+14155550101")).stream_parameters["agentId"] == agent["agent_id"]

    assert alice.delete("/api/numbers/+14155550101").status_code == 204
    assert record("+14155550101") is None
    assert world.owned("+14155550101") is None and world.for_sale("+14155550101")
    assert alice.get("/api/numbers/+14155550101").status_code == 404

    report = await world.inbound_call("+14155550101")
    assert report.outcome == "rejected" and NOT_IN_SERVICE in report.spoken_text
    assert [child.tag for child in ET.fromstring(report.twiml)] == ["Say", "Hangup"]


def test_a_release_twilio_refuses_puts_the_record_back(world: TwilioWorld, alice: httpx.Client) -> None:
    agent = create_agent(alice)
    buy(alice, phone_number="+14155550101", agent_id=agent["agent_id"])
    before = all_records()
    world.fault("DELETE", ".json", status=500, code=20500)
    assert_twilio_error(alice.delete("/api/numbers/+14155550101"), 502, 20500)
    assert all_records() == before
    assert world.owned("+14155550101") is not None


def test_a_release_twilio_does_not_answer_in_time_puts_the_record_back(world: TwilioWorld,
                                                                       alice: httpx.Client) -> None:
    buy(alice, phone_number="+14155550101")
    before = all_records()
    world.fault("DELETE", ".json", status=500, delay_s=2.5)
    assert alice.delete("/api/numbers/+14155550101").status_code == 504
    assert all_records() == before


def test_releasing_a_number_twilio_has_already_taken_back_just_removes_the_record(world: TwilioWorld,
                                                                                  alice: httpx.Client) -> None:
    number = buy(alice, phone_number="+14155550101").json()
    assert world.twilio.delete(f"{world.base}/IncomingPhoneNumbers/{number['twilio_sid']}.json").status_code == 204
    assert alice.delete("/api/numbers/+14155550101").status_code == 204
    assert all_records() == {}


def test_a_number_recorded_by_hand_is_found_on_twilio_to_release_it(world: TwilioWorld, alice: httpx.Client) -> None:
    PhoneNumber(SEEDED_NUMBER, tenant_id="tenant-a").save()  # like the demo seed: no Twilio SID
    assert alice.delete(f"/api/numbers/{SEEDED_NUMBER}").status_code == 204
    assert world.owned(SEEDED_NUMBER) is None and record(SEEDED_NUMBER) is None


# ---- routing follows the table -----------------------------------------------------------------


async def test_buy_then_assign_then_a_call_to_the_number_reaches_the_new_agent(world: TwilioWorld,
                                                                               alice: httpx.Client) -> None:
    first, second = create_agent(alice), create_agent(alice, name="Bea")
    buy(alice, phone_number="+14155550101")
    voice_url = world.owned("+14155550101")["voice_url"]  # type: ignore[index]

    unassigned = await world.inbound_call("+14155550101", voice_url)
    assert unassigned.outcome == "rejected" and NOT_IN_SERVICE in unassigned.spoken_text

    alice.patch("/api/numbers/+14155550101", json={"agent_id": first["agent_id"]})
    reached = await world.inbound_call("+14155550101", voice_url)
    assert reached.stream_parameters["agentId"] == first["agent_id"]
    call = get_call(reached.call_sid)
    assert call is not None and (call.agent_id, call.tenant_id) == (first["agent_id"], "tenant-a")

    alice.patch("/api/numbers/+14155550101", json={"agent_id": second["agent_id"]})
    assert (await world.inbound_call("+14155550101", voice_url)).stream_parameters["agentId"] == second["agent_id"]
