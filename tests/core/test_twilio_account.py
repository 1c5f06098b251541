"""voiceline.twilio_account against the Twilio REST stand-in: what each request sends, and how each way Twilio can
fail becomes a TwilioFailure with Twilio's code and the HTTP status an API in front of it answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from local.asgi_server import ThreadedServer
from local.twilio_rest import TwilioRestStandIn
from voiceline.twilio_account import TwilioAccount, TwilioFailure, Webhooks

ACCOUNT_SID = "AC" + "6" * 32
AUTH_TOKEN = "account-token"
OWNED = "+15550100"
# Nothing listens there: these tests only look at what reaches Twilio.
HOOKS = Webhooks("http://127.0.0.1:9/twilio/voice", "http://127.0.0.1:9/twilio/status")


@dataclass
class Twilio:
    account: TwilioAccount
    stand_in: TwilioRestStandIn
    local: httpx.Client  # the stand-in's /local side


@pytest.fixture
def twilio() -> Iterator[Twilio]:
    stand_in = TwilioRestStandIn(ACCOUNT_SID, AUTH_TOKEN, owned=[OWNED])
    with ThreadedServer(stand_in.app()) as server, httpx.Client(base_url=server.url, timeout=5) as local:
        yield Twilio(TwilioAccount(ACCOUNT_SID, AUTH_TOKEN, server.url, timeout_s=0.5), stand_in, local)


def failure_of(action: object) -> TwilioFailure:
    with pytest.raises(TwilioFailure) as raised:
        action()  # type: ignore[operator]
    return raised.value


def test_search_buy_find_point_and_release_a_number(twilio: Twilio) -> None:
    account = twilio.account
    found = account.search_available("US", area_code="212", contains="0102", limit=5)
    assert [(n.phone_number, n.locality, n.region) for n in found] == [("+12125550102", "New York", "NY")]

    bought = account.buy(HOOKS, phone_number="+12125550102", friendly_name="Sales")
    assert (bought.phone_number, bought.friendly_name, bought.voice_url, bought.voice_method, bought.status_callback,
            bought.status_callback_method) == ("+12125550102", "Sales", HOOKS.voice_url, "POST",
                                               HOOKS.status_callback, "POST")
    assert account.find_owned("+12125550102") == bought
    assert account.find_owned("+1212555010") is None  # Twilio's filter matches partial numbers; ours is exact

    pointed = account.point(bought.sid, "https://elsewhere.example.com/voice", None)
    assert (pointed.voice_url, pointed.status_callback) == ("https://elsewhere.example.com/voice", None)
    account.release(bought.sid)
    assert account.find_owned("+12125550102") is None


@pytest.mark.parametrize(("attempt", "code", "http_status"), [
    (lambda account: account.buy(HOOKS, phone_number="+19995550100"), 21422, 409),
    (lambda account: account.buy(HOOKS, area_code="907"), 21452, 409),
    (lambda account: account.release("PN" + "0" * 32), 20404, 404),
    (lambda account: account.search_available("ZZ"), 20404, 404),
    (lambda account: account.search_available("US", area_code="123"), 21451, 400),
    (lambda account: account.place_call("+15551234567", "+19990000000", HOOKS), 21210, 409),
    (lambda account: account.place_call("not-a-number", OWNED, HOOKS), 21211, 400),
], ids=["not-for-sale", "area-code-empty", "unknown-number", "unknown-country", "bad-area-code",
        "caller-id-not-ours", "bad-to"])
def test_twilios_refusals_keep_their_code_and_become_the_clients_4xx(twilio: Twilio, attempt: object, code: int,
                                                                     http_status: int) -> None:
    failure = failure_of(lambda: attempt(twilio.account))  # type: ignore[operator]
    assert (failure.kind, failure.code, failure.http_status) == ("refused", code, http_status)
    assert not failure.message.startswith("Unable to")  # Twilio's own words, without the client's prefix
    assert failure.to_dict()["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


@pytest.mark.parametrize("path", ["/IncomingPhoneNumbers.json", "/Local.json"], ids=["create", "list-page"])
def test_a_twilio_5xx_is_a_502_with_twilios_code(twilio: Twilio, path: str) -> None:
    method = "POST" if path == "/IncomingPhoneNumbers.json" else "GET"
    twilio.local.post("/local/faults", json={"method": method, "path": path, "status": 500, "code": 20500})
    attempt = (lambda: twilio.account.buy(HOOKS, area_code="415")) if method == "POST" \
        else (lambda: twilio.account.search_available("US"))
    failure = failure_of(attempt)
    assert (failure.kind, failure.status, failure.code, failure.http_status) == ("refused", 500, 20500, 502)


def test_wrong_credentials_are_the_deployments_fault_not_the_clients(twilio: Twilio) -> None:
    server_url = twilio.account._client.api.base_url
    failure = failure_of(lambda: TwilioAccount(ACCOUNT_SID, "wrong", server_url).find_owned(OWNED))
    assert (failure.status, failure.code, failure.http_status) == (401, 20003, 502)


def test_no_answer_in_time_is_a_504(twilio: Twilio) -> None:
    twilio.local.post("/local/faults", json={"method": "POST", "path": "/IncomingPhoneNumbers.json", "delay_s": 2})
    failure = failure_of(lambda: twilio.account.buy(HOOKS, area_code="415"))
    assert (failure.kind, failure.http_status) == ("timed_out", 504)
    assert "within 0.5 s" in failure.message


def test_nobody_listening_is_a_502() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    failure = failure_of(lambda: TwilioAccount(ACCOUNT_SID, AUTH_TOKEN, f"http://127.0.0.1:{closed_port}",
                                               timeout_s=0.5).search_available("US"))
    assert (failure.kind, failure.http_status, failure.code) == ("unreachable", 502, None)


def test_placing_a_call_asks_for_machine_detection_and_a_hang_up_ends_it(twilio: Twilio) -> None:
    twilio.local.put("/local/callees/+15551234567", json={"answers": "no-answer"})
    placed = twilio.account.place_call("+15551234567", OWNED, HOOKS, machine_detection="DetectMessageEnd")
    assert placed.sid.startswith("CA") and placed.status == "queued"
    outcome = twilio.local.get(f"/local/calls/{placed.sid}", params={"wait": 5}).json()
    assert outcome["settled"] and outcome["call"]["status"] == "no-answer"
    assert outcome["call"]["answered_by"] is None  # nobody answered, so AMD has nothing to say
    twilio.account.hang_up(placed.sid)  # a call already over: Twilio changes nothing and says so without error
