"""Stream tokens: proof that a media stream was started by our own voice webhook for this call.

Beside the token rides the call's facts as the webhook knew them (the agent's fingerprint, the numbers,
the direction), signed with the same key, so the bridge need not read them back from DynamoDB before the
greeting. They are a separate Parameter: a bridge that does not know them still verifies the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

VERSION = "v1"
FACTS_VERSION = "f1"
DEFAULT_TTL_S = 300  # Twilio opens the stream within seconds of our TwiML; 5 min is ample slack.


class InvalidStreamToken(ValueError):
    """The token is malformed, forged, for another call, or expired."""


@dataclass(frozen=True)
class StreamClaims:
    call_sid: str
    agent_id: str
    tenant_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, call_sid: str, agent_id: str, tenant_id: str, expires_at: int) -> str:
    message = "|".join((VERSION, call_sid, agent_id, tenant_id, str(expires_at))).encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def issue(key: bytes, call_sid: str, agent_id: str, tenant_id: str, ttl_s: int = DEFAULT_TTL_S,
          now: float | None = None) -> str:
    """A token for one call; well under Twilio's 500-character Parameter limit."""
    expires_at = int((time.time() if now is None else now) + ttl_s)
    signature = _signature(key, call_sid, agent_id, tenant_id, expires_at)
    return ".".join((VERSION, _b64(tenant_id.encode()), str(expires_at), signature))


def verify(key: bytes, token: str, call_sid: str, agent_id: str, now: float | None = None) -> StreamClaims:
    """Check the token against the call SID and agent Twilio sent; raise InvalidStreamToken if it fails."""
    try:
        version, tenant_b64, expires_raw, signature = token.split(".")
        tenant_id = _unb64(tenant_b64).decode()
        expires_at = int(expires_raw)
    except (AttributeError, ValueError, UnicodeDecodeError):
        raise InvalidStreamToken("malformed stream token") from None
    if version != VERSION:
        raise InvalidStreamToken(f"unsupported stream token version {version!r}")
    expected = _signature(key, call_sid, agent_id, tenant_id, expires_at)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise InvalidStreamToken("stream token signature does not match this call")
    if expires_at < (time.time() if now is None else now):
        raise InvalidStreamToken("stream token expired")
    return StreamClaims(call_sid=call_sid, agent_id=agent_id, tenant_id=tenant_id, expires_at=expires_at)


@dataclass(frozen=True)
class CallFacts:
    """What the voice webhook knew of the call when it connected it to the bridge."""

    agent_fingerprint: str  # voiceline.agents.fingerprint of the agent it routed to
    from_number: str
    to_number: str
    direction: str
    has_variables: bool  # the Call holds template variables (an outbound call's), which the facts do not carry


def _facts_signature(key: bytes, call_sid: str, agent_id: str, body: str) -> str:
    message = "|".join((FACTS_VERSION, call_sid, agent_id, body)).encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def issue_facts(key: bytes, call_sid: str, agent_id: str, facts: CallFacts) -> str:
    """The facts, signed for this call and agent; about 110 characters for two E.164 numbers."""
    body = "|".join((facts.agent_fingerprint, facts.from_number, facts.to_number, facts.direction,
                     "1" if facts.has_variables else "0"))
    return ".".join((FACTS_VERSION, _b64(body.encode()), _facts_signature(key, call_sid, agent_id, body)))


def verify_facts(key: bytes, signed: str, call_sid: str, agent_id: str) -> CallFacts:
    """The facts, if our webhook signed them for this call and agent; raise InvalidStreamToken if not."""
    try:
        version, body_b64, signature = signed.split(".")
        body = _unb64(body_b64).decode()
        fingerprint, from_number, to_number, direction, has_variables = body.split("|")
    except (AttributeError, ValueError, UnicodeDecodeError):
        raise InvalidStreamToken("malformed call facts") from None
    if version != FACTS_VERSION:
        raise InvalidStreamToken(f"unsupported call facts version {version!r}")
    if not hmac.compare_digest(_facts_signature(key, call_sid, agent_id, body).encode(), signature.encode()):
        raise InvalidStreamToken("call facts signature does not match this call")
    return CallFacts(fingerprint, from_number, to_number, direction, has_variables == "1")


def stream_parameters(key: bytes, call_sid: str, agent_id: str, tenant_id: str,
                      facts: CallFacts | None) -> dict[str, str]:
    """The <Stream> Parameters our voice webhook sets; Twilio hands them to the bridge in `start`."""
    parameters = {"callSid": call_sid, "agentId": agent_id, "streamToken": issue(key, call_sid, agent_id, tenant_id)}
    if facts is not None:
        parameters["callFacts"] = issue_facts(key, call_sid, agent_id, facts)
    return parameters
