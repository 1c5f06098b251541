"""Returning customers, recognised by the number they call from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voiceline import booking, tenant_data
from voiceline.booking import SLOT_FORMAT
from voiceline.models import Booking

CUSTOMER = "customer#"
PAST_BOOKINGS_SHOWN = 5


@dataclass(frozen=True)
class Customer:
    name: str
    notes: str = ""


def put_customer(tenant_id: str, number: str, customer: Customer) -> None:
    tenant_data.put(tenant_id, CUSTOMER + number, {"name": customer.name, "notes": customer.notes})


def find(tenant_id: str, number: str) -> Customer | None:
    """The business's record of this caller, if it keeps one: one read, cheap enough for call start."""
    if not number:
        return None
    data = tenant_data.get(tenant_id, CUSTOMER + number)
    return None if data is None else Customer(name=data["name"], notes=data.get("notes", ""))


def profile(tenant_id: str, number: str, now: datetime | None = None) -> dict[str, Any]:
    """What the agent may know about the caller: name, notes, upcoming and recent bookings."""
    customer = find(tenant_id, number)
    if customer is None:
        return {"known": False, "message": "No record of this number: treat the caller as new and ask their name."}
    local_now = tenant_data.business_settings(tenant_id).local_time(now or booking.utcnow()).strftime(SLOT_FORMAT)
    upcoming, past = [], []
    for made in Booking.caller_index.query(f"{tenant_id}#{number}", scan_index_forward=False):
        summary = {"confirmation_code": made.confirmation_code, "service": made.service_name,
                   "start": made.slot_start, "status": made.status}
        (upcoming if made.slot_start > local_now else past).append(summary)
    return {"known": True, "name": customer.name, "notes": customer.notes,
            "upcoming_bookings": upcoming[::-1], "past_bookings": past[:PAST_BOOKINGS_SHOWN]}
