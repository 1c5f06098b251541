"""check_availability, book_appointment and cancel_appointment through their real handlers.

The demo business keeps New York time (EDT from 2030-03-10), opens Mon-Fri 08:00-17:00 in
one-hour slots on one van, and needs an hour's notice. Dates are in 2030 so they never go stale.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.functions.tool_calls import (
    CALLER,
    OTHER_CALLER,
    Business,
    context_for,
    event,
    failed,
    freeze_clock,
    handler,
    invoke,
    load_handler_module,
    ok,
    seed_business,
)
from voiceline.models import Booking

TENANT = "tenant-plumbing"
# Monday 2030-03-11, 09:30 in New York (EDT, UTC-4) and 13:30 in UTC.
MONDAY_0930_NEW_YORK = datetime(2030, 3, 11, 13, 30, tzinfo=UTC)


@pytest.fixture
def business(dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> Business:
    business = Business(TENANT)
    seed_business(business)
    freeze_clock(monkeypatch, MONDAY_0930_NEW_YORK)
    return business


def slot_starts(date_from: str, date_to: str | None = None, service: str = "boiler service") -> list[str]:
    output = ok(invoke("check_availability", {"service": service, "date_from": date_from,
                                              "date_to": date_to or date_from}, tenant=TENANT))
    return [slot["start"] for slot in output["slots"]]


def book(slot_start: str, *, caller: str = CALLER, invocation_id: str | None = None,
         service: str = "tap repair") -> dict[str, Any]:
    return invoke("book_appointment", {"service": service, "slot_start": slot_start, "customer_name": "Jordan Lee"},
                  tenant=TENANT, caller=caller, invocation_id=invocation_id)


def bookings() -> list[Booking]:
    return list(Booking.scan())


# --- availability -------------------------------------------------------------------------------

def test_availability_is_in_the_business_time_zone_with_its_notice(business: Business) -> None:
    # 09:30 in New York plus an hour's notice: 11:00 is the first whole slot (in UTC it would be 15:00).
    output = ok(invoke("check_availability", {"service": "boiler service", "date_from": "2030-03-11",
                                              "date_to": "2030-03-11"}, tenant=TENANT))

    assert output["timezone"] == "America/New_York"
    assert [slot["start"][11:] for slot in output["slots"]] == ["11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]
    assert output["slots"][0] == {"start": "2030-03-11T11:00", "end": "2030-03-11T12:00", "weekday": "Monday"}
    assert output["more_available"] is False


def test_availability_follows_opening_hours_and_skips_closed_days(business: Business) -> None:
    starts = slot_starts("2030-03-15", "2030-03-18")  # Friday to Monday

    assert {start[:10] for start in starts} == {"2030-03-15", "2030-03-18"}
    friday = [start[11:] for start in starts if start.startswith("2030-03-15")]
    assert friday == ["08:00", "09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]


def test_a_longer_notice_hides_more_of_today(dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_business(Business(TENANT, min_notice_minutes=240))
    freeze_clock(monkeypatch, MONDAY_0930_NEW_YORK)

    assert slot_starts("2030-03-11")[0] == "2030-03-11T14:00"


def test_availability_leaves_out_booked_slots_but_not_cancelled_ones(business: Business) -> None:
    ok(book("2030-03-12T09:00"))
    cancelled = ok(book("2030-03-12T10:00"))
    ok(invoke("cancel_appointment", {"confirmation_code": cancelled["confirmation_code"]}, tenant=TENANT))

    starts = slot_starts("2030-03-12")

    assert "2030-03-12T09:00" not in starts
    assert "2030-03-12T10:00" in starts


def test_availability_refuses_a_backwards_or_too_long_range(business: Business) -> None:
    failed(invoke("check_availability", {"service": "tap repair", "date_from": "2030-03-12",
                                         "date_to": "2030-03-11"}, tenant=TENANT), "invalid_date_range")
    failed(invoke("check_availability", {"service": "tap repair", "date_from": "2030-03-01",
                                         "date_to": "2030-03-31"}, tenant=TENANT), "invalid_date_range")


def test_availability_for_an_unknown_calendar_is_not_found(business: Business) -> None:
    failed(invoke("check_availability", {"service": "tap repair", "date_from": "2030-03-12", "date_to": "2030-03-12",
                                         "resource": "van-9"}, tenant=TENANT), "not_found")


# --- booking ------------------------------------------------------------------------------------

def test_booking_a_free_slot_confirms_it_with_a_readable_code(business: Business) -> None:
    output = ok(book("2030-03-12T10:00"))

    assert output["start"] == "2030-03-12T10:00" and output["end"] == "2030-03-12T11:00"
    assert output["service"] == "Tap repair"
    code = output["confirmation_code"]
    assert len(code) == 6 and not set(code) & set("01IO")
    [stored] = bookings()
    assert (stored.tenant_id, stored.resource, stored.caller_number, stored.status) == (TENANT, "van-1", CALLER,
                                                                                       "booked")
    assert stored.confirmation_code == code


@pytest.mark.parametrize("slot_start", ["2030-03-16T10:00", "2030-03-12T07:00", "2030-03-12T17:00",
                                        "2030-03-12T10:30", "2030-03-11T10:00"],
                         ids=["saturday", "before-opening", "at-closing", "off-the-hour", "within-notice"])
def test_booking_a_time_that_is_not_a_bookable_slot_is_refused(business: Business, slot_start: str) -> None:
    failed(book(slot_start), "slot_unavailable")

    assert bookings() == []


def test_a_retried_booking_books_once(business: Business) -> None:
    invocation_id = "CA0123456789abcdef0123456789abcdef:call_retry"

    first = ok(book("2030-03-12T10:00", invocation_id=invocation_id))
    retry = ok(book("2030-03-12T10:00", invocation_id=invocation_id))

    assert retry["confirmation_code"] == first["confirmation_code"]
    assert len(bookings()) == 1


def test_a_retry_in_another_execution_environment_still_books_once(business: Business) -> None:
    request_event = event("book_appointment", {"service": "tap repair", "slot_start": "2030-03-12T10:00",
                                               "customer_name": "Jordan Lee"}, TENANT)
    other_environment = load_handler_module("book_appointment").lambda_handler

    first = ok(handler("book_appointment")(request_event, context_for("book_appointment")))
    retry = ok(other_environment(request_event, context_for("book_appointment")))

    assert retry == first
    assert len(bookings()) == 1


def test_an_invocation_id_reused_with_other_arguments_is_refused(business: Business) -> None:
    invocation_id = "CA0123456789abcdef0123456789abcdef:call_reused"
    ok(book("2030-03-12T10:00", invocation_id=invocation_id))

    failed(book("2030-03-12T11:00", invocation_id=invocation_id), "invalid_request")

    assert [stored.slot_start for stored in bookings()] == ["2030-03-12T10:00"]


def test_two_callers_racing_for_one_slot_get_one_booking_and_one_clear_refusal(business: Business) -> None:
    environments = [load_handler_module("book_appointment").lambda_handler for _ in range(2)]
    barrier = threading.Barrier(len(environments), timeout=10)
    replies: list[dict[str, Any]] = []

    def caller(lambda_handler: Any, number: str) -> None:
        request_event = event("book_appointment", {"service": "tap repair", "slot_start": "2030-03-12T10:00",
                                                   "customer_name": f"Caller {number}"}, TENANT, caller=number)
        barrier.wait()
        replies.append(lambda_handler(request_event, context_for("book_appointment")))

    threads = [threading.Thread(target=caller, args=(lambda_handler, number))
               for lambda_handler, number in zip(environments, (CALLER, OTHER_CALLER), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(reply["ok"] for reply in replies) == [False, True]
    [refusal] = [reply for reply in replies if not reply["ok"]]
    assert "just been taken" in failed(refusal, "slot_taken")
    [stored] = bookings()
    assert stored.slot_start == "2030-03-12T10:00"


def test_booking_a_taken_slot_is_refused_and_keeps_the_first_booking(business: Business) -> None:
    first = ok(book("2030-03-12T10:00"))

    failed(book("2030-03-12T10:00", caller=OTHER_CALLER), "slot_taken")

    [stored] = bookings()
    assert stored.confirmation_code == first["confirmation_code"]


# --- cancelling ---------------------------------------------------------------------------------

def test_cancel_by_code_from_the_booking_number_frees_the_slot(business: Business) -> None:
    code = ok(book("2030-03-12T10:00"))["confirmation_code"]

    output = ok(invoke("cancel_appointment", {"confirmation_code": code.lower()}, tenant=TENANT, caller=CALLER))

    assert output == {"confirmation_code": code, "service": "Tap repair", "start": "2030-03-12T10:00",
                      "cancelled": True, "already_cancelled": False}
    assert bookings()[0].status == "cancelled"
    assert ok(book("2030-03-12T10:00", caller=OTHER_CALLER))["start"] == "2030-03-12T10:00"


def test_cancelling_twice_is_not_an_error(business: Business) -> None:
    code = ok(book("2030-03-12T10:00"))["confirmation_code"]
    ok(invoke("cancel_appointment", {"confirmation_code": code}, tenant=TENANT))

    assert ok(invoke("cancel_appointment", {"confirmation_code": code}, tenant=TENANT))["already_cancelled"] is True


def test_cancel_from_another_number_is_refused_without_saying_the_booking_exists(business: Business) -> None:
    code = ok(book("2030-03-12T10:00"))["confirmation_code"]

    refused = failed(invoke("cancel_appointment", {"confirmation_code": code}, tenant=TENANT, caller=OTHER_CALLER),
                     "not_found")
    unknown = failed(invoke("cancel_appointment", {"confirmation_code": "ZZZZZZ"}, tenant=TENANT,
                            caller=OTHER_CALLER), "not_found")

    assert refused.replace(code, "ZZZZZZ") == unknown
    assert bookings()[0].status == "booked"


def test_cancel_after_the_appointment_has_started_is_too_late(business: Business,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code = ok(book("2030-03-12T10:00"))["confirmation_code"]
    freeze_clock(monkeypatch, datetime(2030, 3, 12, 14, 30, tzinfo=UTC))  # 10:30 in New York

    failed(invoke("cancel_appointment", {"confirmation_code": code}, tenant=TENANT), "too_late")

    assert bookings()[0].status == "booked"
