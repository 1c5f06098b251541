"""Stream tokens: proof that a media stream was started by our own voice webhook for this call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

VERSION = "v1"
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
