"""The Twilio REST stand-in's edges over real HTTP and WebSockets: auth, errors, form bodies, the events socket."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from local.asgi_server import serving
from local.twilio_rest import TwilioRestStandIn

ACCOUNT_SID = "AC" + "7" * 32
OTHER_ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "stand-in-token"
WAIT_S = 5.0


@dataclass
class TwilioApi:
    url: str
    stand_in: TwilioRestStandIn


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[TwilioApi]:
    stand_in = TwilioRestStandIn(ACCOUNT_SID, AUTH_TOKEN)
    async with serving(stand_in.app()) as url:
        yield TwilioApi(url, stand_in)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=WAIT_S) as client:
        yield client


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def call_url(api: TwilioApi, call_sid: str, account_sid: str = ACCOUNT_SID) -> str:
    return f"{api.url}/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


AUTH = basic(ACCOUNT_SID, AUTH_TOKEN)


async def register(http: httpx.AsyncClient, api: TwilioApi, call_sid: str, **fields: str) -> httpx.Response:
    form = {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "From": "+15551230000", "To": "+15550100", **fields}
    return await http.post(f"{api.url}/local/calls", data=form)


def events_url(api: TwilioApi, call_sid: str) -> str:
    return api.url.replace("http", "ws", 1) + f"/local/calls/{call_sid}/events"


async def next_update(socket: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(socket.recv(), WAIT_S))


def assert_twilio_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert (body["status"], body["code"]) == (status, code)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert body["message"]
    return body


@pytest.mark.parametrize("headers", [
    {},
    basic(ACCOUNT_SID, "wrong-token"),
    basic(OTHER_ACCOUNT_SID, AUTH_TOKEN),
    basic(ACCOUNT_SID, "tökén"),  # non-ASCII must be refused, not crash the comparison
    {"Authorization": "Basic not base64!"},
    {"Authorization": "Bearer " + AUTH_TOKEN},
], ids=["missing", "wrong-token", "wrong-account", "non-ascii", "not-base64", "not-basic"])
async def test_bad_credentials_are_twilios_authenticate_error(api: TwilioApi, http: httpx.AsyncClient,
                                                              headers: dict[str, str]) -> None:
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    response = await http.post(call_url(api, call_sid), data={"Status": "completed"}, headers=headers)
    body = assert_twilio_error(response, 401, 20003)
    assert body["message"] == "Authenticate"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert api.stand_in.calls[call_sid].is_live


async def test_another_accounts_path_is_refused_even_with_valid_credentials(
        api: TwilioApi, http: httpx.AsyncClient) -> None:
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    response = await http.post(call_url(api, call_sid, OTHER_ACCOUNT_SID), data={"Status": "completed"},
                               headers=AUTH)
    assert_twilio_error(response, 401, 20003)
    assert api.stand_in.calls[call_sid].is_live


async def test_unknown_call_is_20404_naming_the_resource(api: TwilioApi, http: httpx.AsyncClient) -> None:
    call_sid = new_call_sid()
    response = await http.post(call_url(api, call_sid), data={"Status": "completed"}, headers=AUTH)
    body = assert_twilio_error(response, 404, 20404)
    assert body["message"] == f"The requested resource /2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json " \
                              "was not found"


async def test_form_body_reaches_the_phone_exactly_and_the_answer_waits_for_its_ack(
        api: TwilioApi, http: httpx.AsyncClient) -> None:
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    twiml = '<Response><Say>Tom &amp; Jerry: 50% off + more</Say><Dial callerId="+15550100">+15557654321</Dial>' \
            "</Response>"
    async with connect(events_url(api, call_sid)) as socket:
        update = asyncio.create_task(http.post(call_url(api, call_sid), data={"Twiml": twiml, "Empty": ""},
                                               headers=AUTH))
        message = await next_update(socket)
        assert message == {"event": "call.updated", "id": 1, "parameters": {"Twiml": twiml, "Empty": ""}}
        await socket.send(json.dumps({"event": "ack", "id": 999}))  # not this update's ack: still waiting
        done, _ = await asyncio.wait({update}, timeout=0.1)
        assert not done
        await socket.send(json.dumps({"event": "ack", "id": message["id"]}))
        response = await asyncio.wait_for(update, WAIT_S)
    assert response.status_code == 200
    assert response.json()["status"] == "in-progress"  # a <Dial> keeps the call up, on a new leg


async def test_update_with_nobody_listening_is_answered_at_once(api: TwilioApi, http: httpx.AsyncClient) -> None:
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    response = await http.post(call_url(api, call_sid), data={"Status": "completed"}, headers=AUTH)
    resource = response.json()
    assert response.status_code == 200
    assert (resource["sid"], resource["account_sid"], resource["status"]) == (call_sid, ACCOUNT_SID, "completed")
    assert resource["end_time"] is not None
    assert resource["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json"
    assert api.stand_in.calls[call_sid].updates == [{"Status": "completed"}]


async def test_closing_the_events_socket_ends_the_call(api: TwilioApi, http: httpx.AsyncClient) -> None:
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    async with connect(events_url(api, call_sid)):
        pass
    call = api.stand_in.calls[call_sid]
    async with asyncio.timeout(WAIT_S):  # the server sees the close a moment after the client does
        while call.is_live:
            await asyncio.sleep(0.01)
    assert call.status == "completed"


async def test_redirecting_a_call_that_has_ended_is_21220(api: TwilioApi, http: httpx.AsyncClient) -> None:
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    await http.post(call_url(api, call_sid), data={"Status": "completed"}, headers=AUTH)
    for redirect in ({"Twiml": "<Response><Hangup/></Response>"}, {"Url": "https://example.com/twiml"}):
        response = await http.post(call_url(api, call_sid), data=redirect, headers=AUTH)
        body = assert_twilio_error(response, 400, 21220)
        assert body["message"] == "Call is not in-progress. Cannot redirect."


async def test_completing_a_call_that_has_ended_changes_nothing(api: TwilioApi, http: httpx.AsyncClient) -> None:
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    first = (await http.post(call_url(api, call_sid), data={"Status": "completed"}, headers=AUTH)).json()
    again = await http.post(call_url(api, call_sid), data={"Status": "completed"}, headers=AUTH)
    assert again.status_code == 200
    assert again.json()["end_time"] == first["end_time"]
    assert api.stand_in.calls[call_sid].updates == [{"Status": "completed"}]


async def test_registration_needs_the_call_fields_and_refuses_a_live_duplicate(
        api: TwilioApi, http: httpx.AsyncClient) -> None:
    missing = await http.post(f"{api.url}/local/calls", data={"CallSid": new_call_sid()})
    assert missing.status_code == 400
    assert "AccountSid is required" in missing.json()["message"]

    call_sid = new_call_sid()
    created = await register(http, api, call_sid, Direction="outbound-api")
    assert created.status_code == 201
    assert (created.json()["status"], created.json()["direction"]) == ("in-progress", "outbound-api")
    assert (await register(http, api, call_sid)).status_code == 409


async def test_events_socket_is_refused_for_an_unknown_call_and_a_second_listener(
        api: TwilioApi, http: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidStatus):
        async with connect(events_url(api, new_call_sid())):
            pass
    call_sid = new_call_sid()
    await register(http, api, call_sid)
    async with connect(events_url(api, call_sid)):
        with pytest.raises(InvalidStatus):
            async with connect(events_url(api, call_sid)):
                pass
