"""Our Twilio account over its REST API: find, buy, point and release numbers, and place calls, each with a timeout.

Only the admin API imports this module. twilio.rest costs some 120 ms of imports, which the voice
webhook (the caller hears ringing meanwhile) must never pay.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from voiceline import settings, twilio_signature

TWILIO_API_BASE_URL = "https://api.twilio.com"
DEFAULT_TIMEOUT_S = 5.0

# Twilio's error codes that say something about the request rather than about Twilio.
NOT_FOUND = 20404
NUMBER_NOT_AVAILABLE = 21422  # the number asked for is not for sale (any more)
NO_NUMBER_IN_AREA_CODE = 21452  # nothing left to sell in that area code
CALLER_ID_NOT_OURS = 21210  # `From` is not a number of this account (nor a verified caller ID)
CONFLICT_CODES = frozenset({NUMBER_NOT_AVAILABLE, NO_NUMBER_IN_AREA_CODE, CALLER_ID_NOT_OURS})
# Twilio refusing our own credentials or account is the deployment's fault, never the API client's.
DEPLOYMENT_CODES = frozenset({20003, 20005, 20006})
RATE_LIMITED = 20429

# twilio-python prefixes Twilio's message with what it was doing, e.g. "Unable to create record: ".
_CLIENT_PREFIX = re.compile(r"^Unable to [^:]*: ")

FailureKind = Literal["refused", "timed_out", "unreachable"]


class TwilioFailure(Exception):
    """Twilio refused a request (with its HTTP status and error code), or gave no answer in time."""

    def __init__(self, kind: FailureKind, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status  # Twilio's HTTP status
        self.code = code  # Twilio's error code, e.g. 21422; the HTTP status when Twilio gave none

    @property
    def http_status(self) -> int:
        """What an API in front of Twilio answers: the client's mistake stays a 4xx, Twilio's trouble a 502/504."""
        if self.kind == "timed_out":
            return 504
        if self.kind == "unreachable" or self.status is None or self.status >= 500 or self.code in DEPLOYMENT_CODES:
            return 502
        if self.code == RATE_LIMITED or self.status == 429:
            return 503
        if self.code == NOT_FOUND or self.status == 404:
            return 404
        if self.code in CONFLICT_CODES:
            return 409
        return 400

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "twilio_code": self.code, "twilio_status": self.status}
        if self.kind == "refused" and self.code is not None:
            body["more_info"] = f"https://www.twilio.com/docs/errors/{self.code}"
        return body


@dataclass(frozen=True)
class AvailableNumber:
    """A number Twilio has for sale."""

    phone_number: str
    friendly_name: str
    iso_country: str
    locality: str | None = None
    region: str | None = None
    postal_code: str | None = None
    capabilities: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class OwnedNumber:
    """An IncomingPhoneNumber of the account, with where Twilio sends its calls."""

    sid: str
    phone_number: str
    friendly_name: str | None
    voice_url: str | None
    voice_method: str | None
    status_callback: str | None
    status_callback_method: str | None


@dataclass(frozen=True)
class Webhooks:
    """Where Twilio asks what to do with a call (POST), and where it reports the call's status (POST)."""

    voice_url: str
    status_callback: str


@dataclass(frozen=True)
class PlacedCall:
    sid: str
    status: str  # Twilio's, e.g. "queued"


class TwilioAccount:
    """One Twilio account's REST API, every request bounded by `timeout_s` (connect and each read).

    `api_base_url` points the client elsewhere, e.g. at the local stand-in.
    """

    def __init__(self, account_sid: str, auth_token: str, api_base_url: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_s))
        # twilio-python has no base-URL option; the API domain keeps its host in `base_url`.
        self._client.api.base_url = (api_base_url or TWILIO_API_BASE_URL).rstrip("/")
        self._account = self._client.api.v2010.account

    def search_available(self, country: str, area_code: str | None = None, contains: str | None = None,
                         limit: int = 20) -> list[AvailableNumber]:
        """Local voice numbers for sale in `country` (ISO 3166 alpha-2), optionally by area code or pattern."""
        filters: dict[str, Any] = {"voice_enabled": True, "limit": limit}
        if area_code:
            filters["area_code"] = area_code
        if contains:
            filters["contains"] = contains
        with self._request("searching available numbers"):
            found = self._account.available_phone_numbers(country).local.list(**filters)
        return [AvailableNumber(n.phone_number, n.friendly_name, n.iso_country, n.locality, n.region, n.postal_code,
                                dict(n.capabilities or {})) for n in found]

    def buy(self, webhooks: Webhooks, *, phone_number: str | None = None, area_code: str | None = None,
            friendly_name: str | None = None) -> OwnedNumber:
        """Buy `phone_number`, or any number in `area_code`, with its calls sent to `webhooks` from the start."""
        fields: dict[str, Any] = {"voice_url": webhooks.voice_url, "voice_method": "POST",
                                  "status_callback": webhooks.status_callback, "status_callback_method": "POST"}
        if phone_number:
            fields["phone_number"] = phone_number
        if area_code:
            fields["area_code"] = area_code
        if friendly_name:
            fields["friendly_name"] = friendly_name
        with self._request("buying a number"):
            return _owned(self._account.incoming_phone_numbers.create(**fields))

    def find_owned(self, phone_number: str) -> OwnedNumber | None:
        """The account's IncomingPhoneNumber for exactly this E.164 number, if it has one."""
        with self._request("looking the number up"):
            # Twilio's PhoneNumber filter also matches partial numbers: keep the exact one.
            found = self._account.incoming_phone_numbers.list(phone_number=phone_number, limit=20)
        return next((_owned(n) for n in found if n.phone_number == phone_number), None)

    def point(self, number_sid: str, voice_url: str | None, status_callback: str | None,
              voice_method: str | None = "POST", status_callback_method: str | None = "POST") -> OwnedNumber:
        """Send the number's calls and status callbacks to these URLs (empty strings clear them)."""
        with self._request("updating the number's webhooks"):
            return _owned(self._account.incoming_phone_numbers(number_sid).update(
                voice_url=voice_url or "", voice_method=voice_method or "POST",
                status_callback=status_callback or "", status_callback_method=status_callback_method or "POST"))

    def release(self, number_sid: str) -> None:
        """Give the number back to Twilio: the account stops paying for it and its calls stop coming."""
        with self._request("releasing the number"):
            self._account.incoming_phone_numbers(number_sid).delete()

    def place_call(self, to: str, from_: str, webhooks: Webhooks, machine_detection: str | None = None) -> PlacedCall:
        """Ask Twilio to ring `to` from our number `from_`; once answered, Twilio asks `voice_url` what to do.

        `machine_detection` ("Enable" or "DetectMessageEnd") makes Twilio's voice webhook carry AnsweredBy.
        """
        fields: dict[str, Any] = {
            "to": to, "from_": from_, "url": webhooks.voice_url, "method": "POST",
            "status_callback": webhooks.status_callback, "status_callback_method": "POST",
            "status_callback_event": ["initiated", "ringing", "answered", "completed"],
        }
        if machine_detection:
            fields["machine_detection"] = machine_detection
        with self._request("placing the call"):
            call = self._account.calls.create(**fields)
        return PlacedCall(call.sid, call.status)

    def hang_up(self, call_sid: str) -> None:
        """End a call whatever its state: `completed` also cancels a call still queued or ringing."""
        with self._request("hanging the call up"):
            self._account.calls(call_sid).update(status="completed")

    @contextmanager
    def _request(self, doing: str) -> Iterator[None]:
        try:
            yield
        except TwilioRestException as error:
            raise TwilioFailure("refused", _CLIENT_PREFIX.sub("", str(error.msg)), error.status,
                                _code(error.code, error.status)) from None
        except TwilioServiceException as error:  # an RFC 9457 problem body
            raise TwilioFailure("refused", error.detail or error.title, error.status,
                                _code(error.code, error.status)) from None
        except requests.Timeout:
            raise TwilioFailure("timed_out", f"Twilio did not answer {doing} within {self._timeout_s:g} s") from None
        except requests.RequestException as error:
            reason = type(error).__name__
            raise TwilioFailure("unreachable", f"Twilio could not be reached {doing} ({reason})") from None
        except TwilioException as error:
            raise _page_failure(error, doing) from None


VOICE_WEBHOOK_PATH = "/twilio/voice"
STATUS_WEBHOOK_PATH = "/twilio/status"


def deployment_webhooks(headers: Mapping[str, str], default_scheme: str = "https") -> Webhooks:
    """This deployment's Twilio webhooks: under PUBLIC_WEBHOOK_BASE_URL, or else on the host this request came
    to, since the admin API and the webhooks share one HTTP API. `headers` must have lower-case names."""
    base_url = settings.optional("PUBLIC_WEBHOOK_BASE_URL", "") or None

    def url(path: str) -> str:
        return twilio_signature.public_url(headers, path, default_scheme=default_scheme, base_url=base_url)

    return Webhooks(url(VOICE_WEBHOOK_PATH), url(STATUS_WEBHOOK_PATH))


@cache
def _account(account_sid: str, auth_token: str, api_base_url: str, timeout_s: float) -> TwilioAccount:
    return TwilioAccount(account_sid, auth_token, api_base_url, timeout_s)


def account_from_settings() -> TwilioAccount:
    """The deployment's account (TWILIO_ACCOUNT_SID, the auth token secret, TWILIO_API_BASE_URL,
    TWILIO_REST_TIMEOUT_S), one client per configuration so a warm Lambda reuses its connections."""
    return _account(settings.require("TWILIO_ACCOUNT_SID"), settings.twilio_auth_token(),
                    settings.optional("TWILIO_API_BASE_URL", TWILIO_API_BASE_URL),
                    settings.number("TWILIO_REST_TIMEOUT_S", DEFAULT_TIMEOUT_S))


def _owned(number: Any) -> OwnedNumber:
    return OwnedNumber(number.sid, number.phone_number, number.friendly_name, number.voice_url or None,
                       number.voice_method, number.status_callback or None, number.status_callback_method)


def _code(twilio_code: Any, http_status: int) -> int:
    try:
        return int(twilio_code)
    except (TypeError, ValueError):
        return http_status


def _page_failure(error: TwilioException, doing: str) -> TwilioFailure:
    """twilio-python reads a failed list page as TwilioException("Unable to fetch page", response)."""
    response = error.args[1] if len(error.args) > 1 else None
    status = getattr(response, "status_code", None)
    if status is None:
        return TwilioFailure("unreachable", f"Twilio gave an unreadable answer {doing}: {error}")
    try:
        body = json.loads(response.text)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = body.get("message") or body.get("detail") or f"Twilio answered HTTP {status} {doing}"
    return TwilioFailure("refused", str(message), int(status), _code(body.get("code"), int(status)))
