"""Twilio request signatures, checked against the public URL Twilio actually called.

Behind API Gateway or an ALB the app sees an internal scheme and host, so the URL is rebuilt
from X-Forwarded-Proto / X-Forwarded-Host / Host. Media streams are signed over their wss:// URL.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator

_WEBSOCKET_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


def public_url(headers: Mapping[str, str], path: str, *, default_scheme: str, query: str = "",
               websocket: bool = False, base_url: str | None = None) -> str:
    """The URL as Twilio saw it. `headers` must have lower-case names.

    `base_url` (e.g. a custom domain) wins over headers when the deployment sets one.
    """
    if base_url:
        url = base_url.rstrip("/") + path
    else:
        scheme = headers.get("x-forwarded-proto", default_scheme).split(",")[0].strip().lower()
        if websocket:
            scheme = _WEBSOCKET_SCHEMES.get(scheme, "wss")
        host = headers.get("x-forwarded-host") or headers.get("host", "")
        host = host.split(",")[0].strip()
        port = headers.get("x-forwarded-port", "").strip()
        if port and port not in ("80", "443") and ":" not in host:
            host = f"{host}:{port}"
        url = f"{scheme}://{host}{path}"
    return f"{url}?{query}" if query else url


def is_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    """True when `signature` is Twilio's HMAC of url+params under our auth token."""
    if not signature:
        return False
    try:
        return RequestValidator(auth_token).validate(url, dict(params), signature)
    except ValueError:  # a URL that does not parse (a Host of "[x", say) is none that Twilio signed
        return False
