"""The admin API with Twilio: the local gateway serving the admin and webhook functions against moto in-process,
and the Twilio REST stand-in on a thread of its own, for the numbers and outbound-call tests.

Not a test module. `twilio_world(monkeypatch)` points the functions at the stand-in and yields a TwilioWorld.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from local.asgi_server import ThreadedServer
from local.call_simulator import CallConfig, CallReport, place_call
from local.gateway import DEFAULT_TEMPLATE, build_app
from local.twilio_rest import TwilioRestStandIn
from tests.functions.admin_api import AdminApi
from voiceline.models import PhoneNumber

SEEDED_NUMBER = "+15550100"  # owned by the Twilio account from the start, as in the local stack
CALLER = "+15551234567"
WAIT_S = 10.0


@dataclass
class TwilioWorld:
    api: AdminApi
    gateway_url: str
    stand_in: TwilioRestStandIn
    twilio: httpx.Client  # the stand-in: Twilio's REST API with the account's credentials, and /local
    account_sid: str

    @property
    def base(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}"

    def owned(self, phone_number: str) -> dict[str, Any] | None:
        """The account's IncomingPhoneNumber for exactly this number, as Twilio's API shows it."""
        found = self.twilio.get(f"{self.base}/IncomingPhoneNumbers.json", params={"PhoneNumber": phone_number})
        return next((n for n in found.json()["incoming_phone_numbers"] if n["phone_number"] == phone_number), None)

    def for_sale(self, phone_number: str) -> bool:
        country = "GB" if phone_number.startswith("+44") else "US"
        found = self.twilio.get(f"{self.base}/AvailablePhoneNumbers/{country}/Local.json",
                                params={"Contains": phone_number.lstrip("+")[-10:], "PageSize": 50})
        return phone_number in [n["phone_number"] for n in found.json()["available_phone_numbers"]]

    def buy_on_twilio(self, phone_number: str, **form: str) -> dict[str, Any]:
        """A number bought outside Voiceline (in Twilio's console), to import."""
        response = self.twilio.post(f"{self.base}/IncomingPhoneNumbers.json",
                                    data={"PhoneNumber": phone_number, **form})
        assert response.status_code == 201, response.text
        return response.json()

    def fault(self, method: str, path: str, **fault: Any) -> None:
        response = self.twilio.post("/local/faults", json={"method": method, "path": path, **fault})
        assert response.status_code == 201, response.text

    def callee(self, number: str, answers: str) -> None:
        assert self.twilio.put(f"/local/callees/{number}", json={"answers": answers}).status_code == 200

    def call_outcome(self, call_sid: str) -> dict[str, Any]:
        """What became of a call the stand-in placed, once it is over."""
        outcome = self.twilio.get(f"/local/calls/{call_sid}", params={"wait": WAIT_S}, timeout=WAIT_S + 5).json()
        assert outcome["settled"], outcome
        return outcome

    async def inbound_call(self, to_number: str, voice_url: str | None = None) -> CallReport:
        """Someone rings `to_number`: the voice webhook (at the number's VoiceUrl when given) decides."""
        config = CallConfig(gateway_url=self.gateway_url, to_number=to_number, from_number=CALLER,
                            voice_url=voice_url, on_line=lambda line: None, stream_timeout_s=2, max_call_seconds=5)
        return await place_call(config)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def twilio_world(monkeypatch: pytest.MonkeyPatch, timeout_s: float = 1.0) -> Iterator[TwilioWorld]:
    """Needs the `dynamodb` fixture. The functions reach Twilio at the stand-in, with a short REST timeout; the
    bridge is nowhere, so a call that gets through fails to open its media stream (only its TwiML matters here)."""
    account_sid, auth_token = os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"]
    stand_in = TwilioRestStandIn(account_sid, auth_token, owned=[SEEDED_NUMBER], max_call_seconds=5)
    with ThreadedServer(stand_in.app()) as twilio_server:
        monkeypatch.setenv("TWILIO_API_BASE_URL", twilio_server.url)
        monkeypatch.setenv("TWILIO_REST_TIMEOUT_S", str(timeout_s))
        monkeypatch.setenv("BRIDGE_PUBLIC_URL", f"ws://127.0.0.1:{closed_port()}")
        monkeypatch.delenv("PUBLIC_WEBHOOK_BASE_URL", raising=False)
        with ThreadedServer(build_app(DEFAULT_TEMPLATE)) as gateway, \
                httpx.Client(base_url=twilio_server.url, auth=(account_sid, auth_token), timeout=5) as twilio:
            api = AdminApi(gateway.url)
            try:
                yield TwilioWorld(api, gateway.url, stand_in, twilio, account_sid)
            finally:
                api.close()


@pytest.fixture(name="world")
def world_fixture(dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioWorld]:
    """A Twilio stand-in and the gateway, with the admin API pointed at the stand-in."""
    with twilio_world(monkeypatch) as running:
        yield running


@pytest.fixture(name="alice")
def alice_fixture(world: TwilioWorld) -> httpx.Client:
    """Tenant A's admin client."""
    return world.api.as_tenant("tenant-a")


def record(e164: str) -> PhoneNumber | None:
    try:
        return PhoneNumber.get(e164, consistent_read=True)
    except PhoneNumber.DoesNotExist:
        return None


def all_records() -> dict[str, dict[str, Any]]:
    """The PhoneNumbers table as plain values, to show nothing changed."""
    return {number.e164: number.attribute_values for number in PhoneNumber.scan()}
