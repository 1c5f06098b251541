"""The tool Lambdas that write or fail, through their real handlers: messages, customers, DynamoDB errors.

Read-only answers and the request contract are in test_tool_answers.py; bookings in test_booking.py.
"""

from __future__ import annotations

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
    ok,
    seed_business,
)
from voiceline import booking, tenant_data
from voiceline.messages import MESSAGE
from voiceline.models import Booking, IdempotencyRecord, TenantData
from voiceline.tool_contract import INTERNAL_ERROR_MESSAGE

TENANT = "tenant-plumbing"
LONG_AGO = datetime(2029, 1, 1, tzinfo=UTC)


@pytest.fixture
def business(dynamodb: None) -> Business:
    business = Business(TENANT)
    seed_business(business)
    return business


def stored_messages(tenant: str) -> list[dict[str, Any]]:
    return list(tenant_data.of_kind(tenant, MESSAGE).values())


# --- customers ----------------------------------------------------------------------------------

def test_lookup_customer_gives_name_notes_and_bookings_for_the_callers_number(
        business: Business, monkeypatch: pytest.MonkeyPatch) -> None:
    booking.book(TENANT, "boiler service", "2030-01-08T09:00", "Jordan Lee", CALLER, now=LONG_AGO)
    upcoming = booking.book(TENANT, "tap repair", "2030-03-12T10:00", "Jordan Lee", CALLER, now=LONG_AGO)
    booking.book(TENANT, "tap repair", "2030-03-12T11:00", "Someone Else", OTHER_CALLER, now=LONG_AGO)
    freeze_clock(monkeypatch, datetime(2030, 3, 1, 12, tzinfo=UTC))

    output = ok(invoke("lookup_customer", {}, tenant=TENANT, caller=CALLER))

    assert output["known"] is True
    assert (output["name"], output["notes"]) == ("Jordan Lee", "Prefers morning visits.")
    assert output["upcoming_bookings"] == [{"confirmation_code": upcoming["confirmation_code"],
                                            "service": "Tap repair", "start": "2030-03-12T10:00",
                                            "status": "booked"}]
    assert [past["start"] for past in output["past_bookings"]] == ["2030-01-08T09:00"]


# --- messages -----------------------------------------------------------------------------------

def test_take_message_stores_it_with_the_callers_number_and_callback_wish(business: Business) -> None:
    arguments = {"message": "Boiler is making a banging noise.", "callback_requested": True, "caller_name": "Jordan"}

    output = ok(invoke("take_message", arguments, tenant=TENANT, caller=CALLER))

    assert output["saved"] is True
    assert output["callback_number"] == CALLER
    [stored] = stored_messages(TENANT)
    assert stored["message"] == "Boiler is making a banging noise."
    assert (stored["caller_number"], stored["caller_name"], stored["callback_requested"]) == (CALLER, "Jordan", True)


def test_take_message_without_callback_gives_no_callback_number(business: Business) -> None:
    output = ok(invoke("take_message", {"message": "Thanks for last week.", "callback_requested": False},
                       tenant=TENANT))

    assert output["callback_number"] is None
    assert stored_messages(TENANT)[0]["callback_requested"] is False


def test_take_message_retried_with_the_same_invocation_id_stores_one_message(business: Business) -> None:
    request_event = event("take_message", {"message": "Please call about a quote.", "callback_requested": True},
                          TENANT)

    first = handler("take_message")(request_event, context_for("take_message"))
    retry = handler("take_message")(request_event, context_for("take_message"))

    assert ok(retry) == ok(first)
    assert len(stored_messages(TENANT)) == 1


# --- nothing done on bad input; failures are safe and not remembered ----------------------------

def test_invalid_arguments_do_no_work(business: Business) -> None:
    failed(invoke("book_appointment", {"service": "tap repair", "slot_start": "2030-03-12T10:00",
                                       "customer_name": "Jo", "when": "now"}, tenant=TENANT), "invalid_arguments")

    assert list(Booking.scan()) == []
    assert list(IdempotencyRecord.scan()) == []


def test_a_dynamodb_failure_becomes_a_safe_internal_error(business: Business) -> None:
    table = TenantData.Meta.table_name
    TenantData.delete_table()

    message = failed(invoke("get_pricing", {"service": "tap repair"}, tenant=TENANT), "internal_error")

    assert message == INTERNAL_ERROR_MESSAGE
    assert table not in message and TENANT not in message


def test_a_missing_idempotency_table_is_a_safe_internal_error_too(business: Business) -> None:
    IdempotencyRecord.delete_table()

    reply = invoke("take_message", {"message": "Call me.", "callback_requested": True}, tenant=TENANT)

    assert failed(reply, "internal_error") == INTERNAL_ERROR_MESSAGE
    assert stored_messages(TENANT) == []


def test_a_failed_write_is_not_remembered_so_a_retry_runs_again(business: Business,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    request_event = event("take_message", {"message": "Please call back.", "callback_requested": True}, TENANT)

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("DynamoDB is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(tenant_data, "put", unreachable)
        failed(handler("take_message")(request_event, context_for("take_message")), "internal_error")

    ok(handler("take_message")(request_event, context_for("take_message")))
    assert len(stored_messages(TENANT)) == 1
