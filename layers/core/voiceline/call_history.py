"""A tenant's call history, newest first, a page at a time, through the Calls GSIs (never a scan).

The cursor is DynamoDB's LastEvaluatedKey, base64url-encoded JSON. It is opaque to clients and checked
strictly when it comes back: the exact key attributes of the index being queried, with the same
tenant or agent, or InvalidCursor. So a tampered cursor can never widen a query beyond its scope.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.attributes import UTCDateTimeAttribute
from pynamodb.exceptions import QueryError

from voiceline.models import Call, CallEvent

MAX_PAGE = 100
_MAX_CURSOR_LENGTH = 2_000


class InvalidCursor(ValueError):
    """A cursor this query did not hand out."""


@dataclass(frozen=True)
class CallPage:
    calls: list[Call]
    next_cursor: str | None
    """Pass back as `cursor` for the next (older) page; None on the last page."""


def list_calls(tenant_id: str, agent_id: str | None = None, start: datetime | None = None,
               end: datetime | None = None, limit: int = 20, cursor: str | None = None) -> CallPage:
    """The tenant's calls started in [start, end] (either may be open), optionally of one agent, newest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    if agent_id is None:
        index, hash_name, hash_value, only_tenant = Call.tenant_index, "tenant_id", tenant_id, None
    else:
        # An agent's calls are the tenant's calls too: the filter keeps another tenant's out whatever the id.
        index, hash_name, hash_value, only_tenant = Call.agent_index, "agent_id", agent_id, Call.tenant_id == tenant_id
    start_key = _decode(cursor, hash_name, hash_value) if cursor else None
    results = index.query(hash_value, _started_between(start, end), filter_condition=only_tenant,
                          scan_index_forward=False, limit=limit, page_size=limit, last_evaluated_key=start_key)
    try:
        calls = list(results)
    except QueryError as error:
        # DynamoDB's own check of a start key outside the query's range (a cursor from other dates).
        if start_key is not None and getattr(error, "cause_response_code", None) == "ValidationException":
            raise InvalidCursor("the cursor does not belong to this query") from None
        raise
    return CallPage(calls, _encode(results.last_evaluated_key) if results.last_evaluated_key else None)


def call_events(call_sid: str) -> list[CallEvent]:
    """Every event of a call, in the order it happened (by seq)."""
    return list(CallEvent.query(call_sid, consistent_read=True))


def _started_between(start: datetime | None, end: datetime | None) -> Any:
    if start is not None and end is not None:
        return Call.started_at.between(start, end)
    if start is not None:
        return Call.started_at >= start
    if end is not None:
        return Call.started_at <= end
    return None


def _encode(key: dict[str, dict[str, Any]]) -> str:
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, hash_name: str, hash_value: str) -> dict[str, dict[str, str]]:
    if len(cursor) > _MAX_CURSOR_LENGTH:
        raise InvalidCursor("the cursor is too long")
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise InvalidCursor("the cursor is not one this API handed out") from None
    if not isinstance(key, dict) or set(key) != {"call_sid", "started_at", hash_name}:
        raise InvalidCursor("the cursor is not one this API handed out")
    values = {}
    for name, value in key.items():
        if not (isinstance(value, dict) and list(value) == ["S"] and isinstance(value["S"], str)
                and 0 < len(value["S"]) <= 256 and _is_text(value["S"])):
            raise InvalidCursor("the cursor is not one this API handed out")
        values[name] = value["S"]
    if values[hash_name] != hash_value:
        raise InvalidCursor(f"the cursor belongs to another {hash_name.removesuffix('_id')}")
    try:
        UTCDateTimeAttribute().deserialize(values["started_at"])
    except ValueError:
        raise InvalidCursor("the cursor is not one this API handed out") from None
    return key


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
