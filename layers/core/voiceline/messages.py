"""Messages callers leave for the business, with their number and whether they want a call back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from voiceline import tenant_data

MESSAGE = "message#"


def take(tenant_id: str, caller_number: str, message: str, callback_requested: bool, caller_name: str | None = None,
         call_sid: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Store the message; keys sort by time, and the call SID keeps two messages in one instant apart."""
    received_at = (now or datetime.now(UTC)).astimezone(UTC)
    message_id = f"{received_at.isoformat(timespec='microseconds')}#{call_sid or ''}"
    tenant_data.put(tenant_id, MESSAGE + message_id, {
        "message": message, "caller_number": caller_number, "caller_name": caller_name,
        "callback_requested": callback_requested, "call_sid": call_sid, "received_at": received_at.isoformat()})
    return {"saved": True, "message_id": message_id, "callback_requested": callback_requested,
            "callback_number": caller_number if callback_requested else None}

