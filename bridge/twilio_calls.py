"""Call control over Twilio's REST API: hang a live call up, or transfer it with new <Dial> TwiML.

Both are an update of the Call resource (`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`).
Every update has a timeout and ends in a `CallControlResult`; nothing here raises into a call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools import Logger
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

# Imported at start-up: twilio-python would import it lazily on the first hang-up, holding the
# event loop (and every live call's audio) for some 40 ms.
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.twiml.voice_response import VoiceResponse

logger = Logger(service="voiceline-bridge", child=True)

TWILIO_API_BASE_URL = "https://api.twilio.com"
# 20404: no such call. 21220: the call is no longer in progress. Either way it has already ended.
CALL_GONE_CODES = frozenset({20404, 21220})

# updated: Twilio accepted the update; call_already_gone: the call had ended before it (not an error);
# twilio_error: Twilio refused it (see error_code); timed_out / request_failed: no answer from Twilio.
Outcome = Literal["updated", "call_already_gone", "twilio_error", "timed_out", "request_failed"]


@dataclass(frozen=True)
class CallControlResult:
    outcome: Outcome
    elapsed_ms: float
    call_status: str | None = None  # Twilio's status of the call after the update, e.g. "completed"
    error_code: int | None = None  # Twilio's error code, or the HTTP status when Twilio gave none
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """The call is, or already was, where the agent wanted it."""
        return self.outcome in ("updated", "call_already_gone")


def dial_twiml(to_number: str, caller_id: str) -> str:
    """TwiML that ends the media stream and rings `to_number`, showing `caller_id` to whoever answers."""
    response = VoiceResponse()
    response.dial(to_number, caller_id=caller_id)
    return str(response)


class TwilioCalls:
    """An async Twilio REST client for the two updates the bridge makes to a live call.

    The HTTP session (aiohttp, under twilio-python's AsyncTwilioHttpClient) opens on first use,
    because it must be made inside the running event loop; `aclose()` closes it.
    """

    def __init__(self, account_sid: str, auth_token: str, api_base_url: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._api_base_url = (api_base_url or TWILIO_API_BASE_URL).rstrip("/")
        self._timeout_s = timeout_s
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    async def hang_up(self, call_sid: str) -> CallControlResult:
        return await self._update(call_sid, status="completed")

    async def transfer(self, call_sid: str, to_number: str, caller_id: str) -> CallControlResult:
        return await self._update(call_sid, twiml=dial_twiml(to_number, caller_id))

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http, self._client = self._http, None, None
            await http.close()

    def _rest_client(self) -> Client:
        if self._client is None:
            self._http = AsyncTwilioHttpClient()
            self._client = Client(self._account_sid, self._auth_token, http_client=self._http)
            # twilio-python has no base-URL option; the API domain keeps its host in `base_url`.
            self._client.api.base_url = self._api_base_url
        return self._client

    async def _update(self, call_sid: str, **changes: Any) -> CallControlResult:
        started = time.monotonic()

        def result(outcome: Outcome, **fields: Any) -> CallControlResult:
            return CallControlResult(outcome, round((time.monotonic() - started) * 1000, 1), **fields)

        def refused(twilio_code: Any, status: int, message: str) -> CallControlResult:
            code = _error_code(twilio_code, status)
            if code in CALL_GONE_CODES:
                logger.info("call already gone", call_sid=call_sid, twilio_code=code)
                return result("call_already_gone", error_code=code, error_message=message)
            logger.warning("Twilio refused the call update", call_sid=call_sid, twilio_code=code,
                           http_status=status, error_message=message)
            return result("twilio_error", error_code=code, error_message=message)

        try:
            # AsyncTwilioHttpClient passes no timeout of its own to aiohttp: bound the whole request here.
            async with asyncio.timeout(self._timeout_s):
                call: CallInstance = await self._rest_client().api.v2010.account.calls(call_sid).update_async(**changes)
        except TwilioRestException as error:
            return refused(error.code, error.status, error.msg)
        except TwilioServiceException as error:  # an RFC 9457 problem body: not a TwilioRestException
            return refused(error.code, error.status, error.detail or error.title)
        except TimeoutError:
            logger.warning("Twilio call update timed out", call_sid=call_sid, timeout_s=self._timeout_s)
            return result("timed_out", error_message=f"no answer from Twilio within {self._timeout_s} s")
        except Exception as error:  # connection refused, TLS, a reply that is not Twilio's JSON…
            logger.warning("Twilio call update failed", call_sid=call_sid, error=repr(error))
            return result("request_failed", error_message=repr(error))
        return result("updated", call_status=call.status)


def _error_code(twilio_code: Any, http_status: int) -> int:
    """Twilio's numeric error code; the HTTP status when the body carried none (or not a number)."""
    try:
        return int(twilio_code)
    except (TypeError, ValueError):
        return http_status
