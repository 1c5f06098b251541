"""Opening the OpenAI Realtime WebSocket, and telling failures worth another try from fatal ones."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

MAX_MODEL_MESSAGE_BYTES = 4 * 1024 * 1024
# No retry helps these: the key, the account or the model must be fixed first.
FATAL_ERROR_CODES = frozenset({"invalid_api_key", "insufficient_quota", "model_not_found", "account_deactivated",
                               "billing_not_active", "organization_deactivated"})
# A handshake answered with one of these is refused for a reason a retry does not change (bad key, no access, no
# such model); 408, 429 and 5xx are the service being busy or down, and may pass.
FATAL_HANDSHAKE_STATUSES = frozenset({400, 401, 403, 404})


async def open_realtime(base_url: str, api_key: str, model: str, timeout_s: float) -> ClientConnection:
    """Connect with a bounded wait; GA needs no OpenAI-Beta header."""
    return await connect(
        f"{base_url}?model={quote(model)}",
        additional_headers={"Authorization": f"Bearer {api_key}"},
        open_timeout=timeout_s,
        close_timeout=2,
        max_size=MAX_MODEL_MESSAGE_BYTES,
        compression=None,  # μ-law audio does not compress; deflate would only cost CPU
    )


def is_fatal_connect_error(error: BaseException) -> bool:
    """A refused handshake that no retry will fix: 401 for a bad key, 429 for no quota (not for rate limits)."""
    if not isinstance(error, InvalidStatus):
        return False  # refused TCP, a timeout, a reset: the network or the service, worth another try
    response = error.response
    if response.status_code in FATAL_HANDSHAKE_STATUSES:
        return True
    try:
        body: Any = json.loads(response.body or b"{}")
    except ValueError:
        return False
    return error_code(body) in FATAL_ERROR_CODES


def error_code(payload: Any) -> str | None:
    """The `error.code` of an `error` event or an HTTP error body."""
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def is_server_error(event: dict[str, Any]) -> bool:
    """An `error` event about OpenAI's side, after which the session is not to be trusted: reconnect."""
    error = event.get("error")
    return isinstance(error, dict) and error.get("type") == "server_error"
