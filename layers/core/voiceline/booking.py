"""Appointments: free slots in the business's own time zone, booking a slot exactly once, cancelling.

Every booking takes one slot of the business's slot length on one calendar resource, so the key
(tenant#resource, slot_start) is the whole truth about a slot and one conditional put guards it.
Slot times are local to the business ("2026-03-10T09:00"), as the caller and the model speak them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from voiceline import catalog, tenant_data
from voiceline.catalog import Service
from voiceline.models import Booking
from voiceline.ownership import condition_failed
from voiceline.tenant_data import BusinessSettings
from voiceline.tool_contract import ToolError

SLOT_FORMAT = "%Y-%m-%dT%H:%M"
HOURS = "hours#"
RESOURCE = "resource#"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RANGE_DAYS = 14
MAX_SLOTS = 24  # enough to offer a choice; the model reads them aloud
BOOKED, CANCELLED = "booked", "cancelled"
# No 0/O or 1/I: callers read the code back over a phone line.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 6


def utcnow() -> datetime:
    """The clock every "is it too soon / too late" decision reads; tests set it instead of waiting."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Diary:
    """What decides which slots exist: the business's settings, opening hours and calendar resources."""

    business: BusinessSettings
    hours: dict[int, tuple[time, time]]  # weekday (Monday 0) → open, close
    resources: dict[str, frozenset[str]]  # resource → the service ids it does; empty means all

    def slot_starts(self, day: date) -> Iterator[datetime]:
        """Every slot start on `day`, as naive local times, that ends by closing time."""
        if day.weekday() not in self.hours:
            return
        opens, closes = self.hours[day.weekday()]
        length = timedelta(minutes=self.business.slot_minutes)
        start, end = datetime.combine(day, opens), datetime.combine(day, closes)
        while start + length <= end:
            yield start
            start += length

    def earliest_start(self, now: datetime) -> datetime:
        """The first bookable local time: now at the business plus the notice it needs."""
        return self.business.local_time(now) + timedelta(minutes=self.business.min_notice_minutes)

    def resources_for(self, service: Service, resource: str | None = None) -> list[str]:
        doing = [name for name, services in sorted(self.resources.items()) if not services or service.id in services]
        if resource is not None:
            if resource not in self.resources:
                raise ToolError("not_found", f"There is no calendar called {resource!r}.")
            doing = [name for name in doing if name == resource]
        if not doing:
            raise ToolError("not_found", f"Nobody is available for {service.name} on that calendar.")
        return doing


def put_opening_hours(tenant_id: str, weekday: str, opens: str, closes: str) -> None:
    tenant_data.put(tenant_id, HOURS + weekday, {"open": opens, "close": closes})


def put_resource(tenant_id: str, resource: str, name: str, service_ids: list[str] | None = None) -> None:
    tenant_data.put(tenant_id, RESOURCE + resource, {"name": name, "services": service_ids or []})


def load_diary(tenant_id: str) -> Diary:
    hours = {WEEKDAYS.index(day): (time.fromisoformat(data["open"]), time.fromisoformat(data["close"]))
             for day, data in tenant_data.of_kind(tenant_id, HOURS).items() if day in WEEKDAYS}
    resources = {name: frozenset(data.get("services", ())) for name, data in
                 tenant_data.of_kind(tenant_id, RESOURCE).items()}
    return Diary(tenant_data.business_settings(tenant_id), hours, resources)


def availability(tenant_id: str, service_asked: str, date_from: date, date_to: date, resource: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """Free slots for a service between two days, in the business's time zone."""
    if date_to < date_from:
        raise ToolError("invalid_date_range", "date_to is before date_from.")
    if (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise ToolError("invalid_date_range", f"Search at most {MAX_RANGE_DAYS} days at a time.")
    service = catalog.find_service(tenant_id, service_asked)
    diary = load_diary(tenant_id)
    candidates = diary.resources_for(service, resource)
    earliest = diary.earliest_start(now or utcnow())
    first, last = date_from.strftime(SLOT_FORMAT), (date_to + timedelta(days=1)).strftime(SLOT_FORMAT)
    taken = {(booking.resource, booking.slot_start)
             for name in candidates
             for booking in Booking.query(_tenant_resource(tenant_id, name), Booking.slot_start.between(first, last),
                                          filter_condition=Booking.status == BOOKED)}
    free = [start for day in _days(date_from, date_to) for start in diary.slot_starts(day)
            if start >= earliest and any((name, start.strftime(SLOT_FORMAT)) not in taken for name in candidates)]
    length = timedelta(minutes=diary.business.slot_minutes)
    return {"service": service.name, "timezone": diary.business.timezone,
            "slots": [_slot(start, length) for start in free[:MAX_SLOTS]], "more_available": len(free) > MAX_SLOTS}


def book(tenant_id: str, service_asked: str, slot_start: str, customer_name: str, caller_number: str,
         notes: str | None = None, call_sid: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Book the slot on the first free resource that does the service, or ToolError slot_taken."""
    service = catalog.find_service(tenant_id, service_asked)
    diary = load_diary(tenant_id)
    start = datetime.strptime(slot_start, SLOT_FORMAT)
    if start not in diary.slot_starts(start.date()) or start < diary.earliest_start(now or utcnow()):
        raise ToolError("slot_unavailable", f"{slot_start} is not a bookable time. Offer a slot from "
                                            "check_availability instead.")
    length = timedelta(minutes=diary.business.slot_minutes)
    code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    for resource in diary.resources_for(service):
        booking = Booking(_tenant_resource(tenant_id, resource), slot_start, slot_end=(start + length).strftime(
            SLOT_FORMAT), tenant_id=tenant_id, resource=resource, confirmation_code=code,
            tenant_code=f"{tenant_id}#{code}", tenant_caller=f"{tenant_id}#{caller_number}",
            caller_number=caller_number, customer_name=customer_name, service_id=service.id,
            service_name=service.name, notes=notes or None, status=BOOKED, call_sid=call_sid,
            created_at=utcnow())
        try:
            # A cancelled booking frees its slot; anything else there means someone was faster.
            booking.save(condition=Booking.slot_start.does_not_exist() | (Booking.status == CANCELLED))
        except PutError as error:
            if not condition_failed(error):
                raise
            continue
        return {"confirmation_code": code, "service": service.name, "customer_name": customer_name,
                **_slot(start, length), "timezone": diary.business.timezone}
    raise ToolError("slot_taken", f"{slot_start} has just been taken. Offer the caller another slot from "
                                  "check_availability.")


def cancel(tenant_id: str, confirmation_code: str, caller_number: str, now: datetime | None = None
           ) -> dict[str, Any]:
    """Cancel a booking made from the caller's own number; cancelling twice is not an error."""
    code = confirmation_code.strip().upper()
    matches = [booking for booking in Booking.code_index.query(f"{tenant_id}#{code}")
               if booking.caller_number == caller_number]
    if not matches:
        raise ToolError("not_found", f"No booking with code {code} was made from the number the caller is "
                                     "calling from.")
    booking = matches[0]
    summary = {"confirmation_code": code, "service": booking.service_name, "start": booking.slot_start}
    if booking.status == CANCELLED:
        return {**summary, "cancelled": True, "already_cancelled": True}
    local_now = tenant_data.business_settings(tenant_id).local_time(now or utcnow())
    if datetime.strptime(booking.slot_start, SLOT_FORMAT) <= local_now:
        raise ToolError("too_late", "That appointment has already started or passed.")
    try:
        booking.update(actions=[Booking.status.set(CANCELLED), Booking.cancelled_at.set(utcnow())],
                       condition=(Booking.confirmation_code == code) & (Booking.status == BOOKED))
    except UpdateError as error:
        if not condition_failed(error):
            raise
        return {**summary, "cancelled": True, "already_cancelled": True}
    return {**summary, "cancelled": True, "already_cancelled": False}


def _tenant_resource(tenant_id: str, resource: str) -> str:
    return f"{tenant_id}#{resource}"


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _slot(start: datetime, length: timedelta) -> dict[str, str]:
    return {"start": start.strftime(SLOT_FORMAT), "end": (start + length).strftime(SLOT_FORMAT),
            "weekday": start.strftime("%A")}
