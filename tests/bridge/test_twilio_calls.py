"""Call control over real HTTP: the bridge's Twilio REST client against the local Twilio REST stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.twilio_calls import TwilioCalls
from local.asgi_server import serving
from local.call_simulator.call_updates import CallUpdates, registered_call
from local.twilio_rest import TwilioRestStandIn

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "test-auth-token"
CALLER = "+15551230000"
BUSINESS = "+15550100"
WAIT_S = 5.0


@pytest.fixture(scope="module")
async def twilio_api() -> AsyncIterator[str]:
    async with serving(TwilioRestStandIn(ACCOUNT_SID, AUTH_TOKEN).app()) as url:
        yield url


@pytest.fixture
async def calls(twilio_api: str) -> AsyncIterator[TwilioCalls]:
    client = TwilioCalls(ACCOUNT_SID, AUTH_TOKEN, twilio_api, timeout_s=WAIT_S)
    yield client
    await client.aclose()


@contextlib.asynccontextmanager
async def live_call(api_url: str, call_sid: str) -> AsyncIterator[CallUpdates]:
    """A call registered and listened to exactly as the call simulator does it."""
    parameters = {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "From": CALLER, "To": BUSINESS,
                  "Direction": "inbound"}
    async with httpx.AsyncClient(timeout=WAIT_S) as http, \
            registered_call(http, api_url, parameters, WAIT_S) as updates:
        yield updates


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections, reads nothing and never answers: a Twilio that has hung."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_hang_up_completes_the_call_and_the_phone_hears_it(calls: TwilioCalls, twilio_api: str) -> None:
    async with live_call(twilio_api, "CA" + "a1" * 16) as updates:
        result = await calls.hang_up("CA" + "a1" * 16)
        # The stand-in answers once the phone has acknowledged the update: no waiting needed here.
        end = updates.end
    assert (result.outcome, result.ok, result.call_status) == ("updated", True, "completed")
    assert result.error_code is None
    assert end is not None
    assert (end.ended_by, end.transferred_to, end.error) == ("agent_hung_up", None, None)


async def test_transfer_dials_the_number_showing_the_caller_id(calls: TwilioCalls, twilio_api: str) -> None:
    async with live_call(twilio_api, "CA" + "b2" * 16) as updates:
        result = await calls.transfer("CA" + "b2" * 16, "+15557654321", BUSINESS)
        end = updates.end
    assert (result.outcome, result.ok, result.call_status) == ("updated", True, "in-progress")
    assert end is not None
    assert (end.ended_by, end.transferred_to, end.transfer_caller_id, end.error) == (
        "transferred", "+15557654321", BUSINESS, None)


async def test_unknown_call_is_already_gone_not_an_error(calls: TwilioCalls) -> None:
    result = await calls.hang_up("CA" + "0" * 32)
    assert (result.outcome, result.ok, result.error_code) == ("call_already_gone", True, 20404)
    assert "was not found" in (result.error_message or "")


async def test_transfer_after_the_caller_hung_up_is_already_gone(calls: TwilioCalls, twilio_api: str) -> None:
    async with live_call(twilio_api, "CA" + "c3" * 16):
        pass  # the caller hangs up: the call has ended, but Twilio still knows it
    result = await calls.transfer("CA" + "c3" * 16, "+15557654321", BUSINESS)
    assert (result.outcome, result.ok, result.error_code) == ("call_already_gone", True, 21220)


async def test_wrong_auth_token_is_twilios_authenticate_error(twilio_api: str) -> None:
    client = TwilioCalls(ACCOUNT_SID, "not-the-token", twilio_api, timeout_s=WAIT_S)
    try:
        async with live_call(twilio_api, "CA" + "d4" * 16) as updates:
            result = await client.hang_up("CA" + "d4" * 16)
            end = updates.end
    finally:
        await client.aclose()
    assert (result.outcome, result.ok, result.error_code) == ("twilio_error", False, 20003)
    assert "Authenticate" in (result.error_message or "")
    assert end is None  # the call went on


async def test_twilio_that_never_answers_times_out_within_the_timeout() -> None:
    async with silent_server() as url:
        client = TwilioCalls(ACCOUNT_SID, AUTH_TOKEN, url, timeout_s=0.3)
        started = time.monotonic()
        try:
            result = await client.hang_up("CA" + "e5" * 16)
        finally:
            await client.aclose()
    elapsed_s = time.monotonic() - started
    assert (result.outcome, result.ok) == ("timed_out", False)
    assert 0.3 <= elapsed_s < 2.0
    assert result.elapsed_ms >= 300


async def test_nothing_listening_is_a_failed_request_not_an_exception() -> None:
    client = TwilioCalls(ACCOUNT_SID, AUTH_TOKEN, f"http://127.0.0.1:{closed_port()}", timeout_s=WAIT_S)
    try:
        result = await client.hang_up("CA" + "f6" * 16)
    finally:
        await client.aclose()
    assert (result.outcome, result.ok, result.call_status) == ("request_failed", False, None)
    assert result.error_message


async def test_client_is_reusable_after_aclose(calls: TwilioCalls) -> None:
    await calls.aclose()
    result = await calls.hang_up("CA" + "0" * 32)
    assert result.outcome == "call_already_gone"
