"""The Twilio REST stand-in's phone numbers over real HTTP: the inventory search, buying, listing, pointing,
releasing, Twilio's error codes, and faults made on purpose."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.asgi_server import ThreadedServer
from local.twilio_rest import TwilioRestStandIn

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "numbers-token"
OWNED = "+15550100"
BASE = f"/2010-04-01/Accounts/{ACCOUNT_SID}"


@pytest.fixture
def twilio() -> Iterator[httpx.Client]:
    with ThreadedServer(TwilioRestStandIn(ACCOUNT_SID, AUTH_TOKEN, owned=[OWNED]).app()) as server, \
            httpx.Client(base_url=server.url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5) as client:
        yield client


def available(client: httpx.Client, country: str = "US", **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"{BASE}/AvailablePhoneNumbers/{country}/Local.json", params=query)
    assert response.status_code == 200, response.text
    return response.json()["available_phone_numbers"]


def buy(client: httpx.Client, **form: str) -> httpx.Response:
    return client.post(f"{BASE}/IncomingPhoneNumbers.json", data=form)


def owned(client: httpx.Client, **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"{BASE}/IncomingPhoneNumbers.json", params=query)
    assert response.status_code == 200, response.text
    return response.json()["incoming_phone_numbers"]


def assert_twilio_error(response: httpx.Response, status: int, code: int) -> None:
    assert (response.status_code, response.json()["code"], response.json()["status"]) == (status, code, status), \
        response.text


def test_the_inventory_is_the_same_every_run_and_filters_by_area_code_and_pattern(twilio: httpx.Client) -> None:
    by_area = available(twilio, AreaCode="415", PageSize=3)
    assert [n["phone_number"] for n in by_area] == ["+14155550100", "+14155550101", "+14155550102"]
    first = by_area[0]
    assert (first["friendly_name"], first["locality"], first["region"], first["iso_country"]) == (
        "(415) 555-0100", "San Francisco", "CA", "US")
    assert first["capabilities"]["voice"] is True

    assert [n["phone_number"] for n in available(twilio, Contains="5550117")] == [
        "+12125550117", "+13125550117", "+14155550117", "+15555550117"]
    assert [n["phone_number"] for n in available(twilio, Contains="+131255501*9")] == [
        "+13125550109", "+13125550119"]
    assert [n["phone_number"] for n in available(twilio, Contains="0119$", AreaCode="212")] == ["+12125550119"]
    assert available(twilio, "GB", PageSize=1)[0]["phone_number"] == "+442079460100"
    assert available(twilio, AreaCode="907") == []  # an area code with nothing left: an empty page, not an error


@pytest.mark.parametrize(("path", "status", "code"), [
    ("AvailablePhoneNumbers/ZZ/Local.json", 404, 20404),
    ("AvailablePhoneNumbers/US/Local.json?AreaCode=12", 400, 21451),
    ("AvailablePhoneNumbers/US/Local.json?Contains=5", 400, 20001),
], ids=["unknown-country", "bad-area-code", "bad-pattern"])
def test_a_bad_search_is_twilios_error(twilio: httpx.Client, path: str, status: int, code: int) -> None:
    assert_twilio_error(twilio.get(f"{BASE}/{path}"), status, code)


def test_buying_a_number_takes_it_out_of_the_inventory_with_its_webhooks_set(twilio: httpx.Client) -> None:
    response = buy(twilio, PhoneNumber="+14155550103", VoiceUrl="https://example.com/twilio/voice",
                   VoiceMethod="post", StatusCallback="https://example.com/twilio/status", FriendlyName="Front desk")
    assert response.status_code == 201, response.text
    number = response.json()
    assert number["sid"].startswith("PN") and len(number["sid"]) == 34
    assert (number["phone_number"], number["friendly_name"], number["account_sid"]) == (
        "+14155550103", "Front desk", ACCOUNT_SID)
    assert (number["voice_url"], number["voice_method"], number["status_callback"],
            number["status_callback_method"]) == ("https://example.com/twilio/voice", "POST",
                                                  "https://example.com/twilio/status", "POST")
    assert "+14155550103" not in [n["phone_number"] for n in available(twilio, AreaCode="415")]
    assert twilio.get(f"{BASE}/IncomingPhoneNumbers/{number['sid']}.json").json() == number

    assert_twilio_error(buy(twilio, PhoneNumber="+14155550103"), 400, 21422)  # sold already


def test_buying_by_area_code_takes_the_first_number_left_until_none_is(twilio: httpx.Client) -> None:
    bought = [buy(twilio, AreaCode="555").json()["phone_number"] for _ in range(20)]
    assert bought == [f"+155555501{n:02d}" for n in range(20)]
    assert_twilio_error(buy(twilio, AreaCode="555"), 400, 21452)
    assert_twilio_error(buy(twilio, PhoneNumber="+19995550100"), 400, 21422)  # never for sale
    assert_twilio_error(buy(twilio), 400, 21421)
    assert_twilio_error(buy(twilio, AreaCode="555", VoiceMethod="PUT"), 400, 21452)


def test_the_account_lists_its_numbers_and_finds_one_by_number(twilio: httpx.Client) -> None:
    bought = buy(twilio, PhoneNumber="+12125550100").json()
    assert [n["phone_number"] for n in owned(twilio)] == [OWNED, "+12125550100"]
    assert [n["sid"] for n in owned(twilio, PhoneNumber="+12125550100")] == [bought["sid"]]
    assert [n["phone_number"] for n in owned(twilio, PhoneNumber="2125550*00")] == ["+12125550100"]
    assert owned(twilio, PhoneNumber="+19999999999") == []


def test_the_list_pages_as_twilio_does(twilio: httpx.Client) -> None:
    for _ in range(4):
        assert buy(twilio, AreaCode="312").status_code == 201
    page = twilio.get(f"{BASE}/IncomingPhoneNumbers.json", params={"PageSize": 2}).json()
    seen = [n["phone_number"] for n in page["incoming_phone_numbers"]]
    while page["next_page_uri"]:
        page = twilio.get(page["next_page_uri"]).json()
        seen += [n["phone_number"] for n in page["incoming_phone_numbers"]]
    assert seen == [OWNED] + [f"+13125550{n}" for n in range(100, 104)]


def test_updating_a_number_repoints_its_webhooks_and_keeps_the_rest(twilio: httpx.Client) -> None:
    sid = owned(twilio)[0]["sid"]
    response = twilio.post(f"{BASE}/IncomingPhoneNumbers/{sid}.json",
                           data={"VoiceUrl": "https://new.example.com/voice", "Unknown": "ignored"})
    assert response.status_code == 200
    assert (response.json()["voice_url"], response.json()["status_callback"]) == ("https://new.example.com/voice", "")
    bad_method = twilio.post(f"{BASE}/IncomingPhoneNumbers/{sid}.json", data={"VoiceMethod": "PUT"})
    assert_twilio_error(bad_method, 400, 21204)
    assert twilio.get(f"{BASE}/IncomingPhoneNumbers/{sid}.json").json()["voice_method"] == "POST"


def test_releasing_a_number_returns_it_to_the_inventory_and_then_it_is_gone(twilio: httpx.Client) -> None:
    sid = buy(twilio, PhoneNumber="+13125550105").json()["sid"]
    assert twilio.delete(f"{BASE}/IncomingPhoneNumbers/{sid}.json").status_code == 204
    assert "+13125550105" in [n["phone_number"] for n in available(twilio, AreaCode="312")]
    assert_twilio_error(twilio.delete(f"{BASE}/IncomingPhoneNumbers/{sid}.json"), 404, 20404)
    assert_twilio_error(twilio.get(f"{BASE}/IncomingPhoneNumbers/{sid}.json"), 404, 20404)
    assert_twilio_error(twilio.post(f"{BASE}/IncomingPhoneNumbers/{sid}.json", data={}), 404, 20404)


def test_every_numbers_endpoint_needs_the_accounts_credentials(twilio: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=str(twilio.base_url), timeout=5)
    with anonymous:
        for method, path in [("GET", "AvailablePhoneNumbers/US/Local.json"), ("GET", "IncomingPhoneNumbers.json"),
                             ("POST", "IncomingPhoneNumbers.json"), ("DELETE", "IncomingPhoneNumbers/PN1.json"),
                             ("POST", "Calls.json")]:
            assert_twilio_error(anonymous.request(method, f"{BASE}/{path}"), 401, 20003)
    assert len(owned(twilio)) == 1


def test_a_fault_fails_the_matching_requests_as_often_as_asked(twilio: httpx.Client) -> None:
    fault = {"method": "POST", "path": "/IncomingPhoneNumbers.json", "status": 503, "code": 20503,
             "message": "Service unavailable", "times": 2}
    assert twilio.post("/local/faults", json=fault).status_code == 201
    assert available(twilio, PageSize=1)  # another path: untouched
    for _ in range(2):
        response = buy(twilio, PhoneNumber="+12125550110")
        assert_twilio_error(response, 503, 20503)
        assert response.json()["message"] == "Service unavailable"
    assert buy(twilio, PhoneNumber="+12125550110").status_code == 201  # the fault is used up


def test_a_delay_fault_stalls_the_request_and_then_serves_it(twilio: httpx.Client) -> None:
    twilio.post("/local/faults", json={"method": "GET", "path": "/IncomingPhoneNumbers.json", "delay_s": 0.3})
    started = time.monotonic()
    assert len(owned(twilio)) == 1
    assert time.monotonic() - started >= 0.3
    assert twilio.delete("/local/faults").status_code == 204


def test_a_fault_that_is_not_one_is_refused(twilio: httpx.Client) -> None:
    assert twilio.post("/local/faults", json={"method": "GET", "colour": "red"}).status_code == 400
