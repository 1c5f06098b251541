"""Twilio's HTTP side of a call: form-encoded webhooks to the gateway, signed as Twilio signs them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
from twilio.request_validator import RequestValidator

from local.call_simulator.config import CallConfig


def call_parameters(call_sid: str, config: CallConfig) -> dict[str, str]:
    """The parameters Twilio sends with every webhook of a call (on an outbound call, From is our number)."""
    parameters = {
        "CallSid": call_sid,
        "AccountSid": config.account_sid,
        "From": config.from_number,
        "To": config.to_number,
        "Caller": config.from_number,
        "Called": config.to_number,
        "Direction": config.direction,
        "ApiVersion": "2010-04-01",
    }
    if config.answered_by is not None:
        parameters["AnsweredBy"] = config.answered_by
    return parameters


def voice_parameters(call_sid: str, config: CallConfig) -> dict[str, str]:
    """The voice webhook: Twilio asks what to do, while an inbound caller hears ringing or once the callee answered."""
    status = "in-progress" if config.direction != "inbound" else "ringing"
    return {**call_parameters(call_sid, config), "CallStatus": status}


def status_parameters(call_sid: str, config: CallConfig, duration_s: int) -> dict[str, str]:
    """The final status callback of a call that has ended (or never got through: busy, no-answer, failed)."""
    return {
        **call_parameters(call_sid, config),
        "CallStatus": config.unanswered or "completed",
        "CallDuration": str(duration_s),
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "0",
        "Timestamp": format_datetime(datetime.now(UTC)),
    }


class TwilioWebhooks:
    def __init__(self, http: httpx.AsyncClient, auth_token: str) -> None:
        self._http = http
        self._validator = RequestValidator(auth_token)

    async def post(self, url: str, params: dict[str, str]) -> httpx.Response:
        """POST the form; the signature covers the exact URL posted to and every parameter."""
        signature = self._validator.compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1",
                   "I-Twilio-Idempotency-Token": str(uuid.uuid4())}
        return await self._http.post(url, data=params, headers=headers)
