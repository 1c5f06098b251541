"""Two businesses with the same service ids, calendar, article ids and customer number never see each other.

The tenant comes only from the call context the bridge fills in; nothing in the arguments can move a
tool to another business's data.
"""

from __future__ import annotations

import pytest

from tests.functions.tool_calls import CALLER, Business, failed, invoke, ok, seed_business
from voiceline.models import Booking

A, B = "tenant-a", "tenant-b"
B_ARTICLES = {
    "payment-methods": ("Payment methods", "We take cash only, on the day."),
    "parking": ("Parking", "Our vans need a parking space within 50 metres of the door."),
}


@pytest.fixture
def businesses(dynamodb: None) -> tuple[Business, Business]:
    a = Business(A, tap_repair_price=95.0, customer_name="Jordan Lee")
    b = Business(B, tap_repair_price=120.0, customer_name="Sam Rivera", articles=B_ARTICLES)
    seed_business(a)
    seed_business(b)
    return a, b


def book(tenant: str, slot_start: str = "2030-03-12T10:00") -> dict[str, str]:
    return ok(invoke("book_appointment", {"service": "tap repair", "slot_start": slot_start,
                                          "customer_name": "Jordan Lee"}, tenant=tenant, caller=CALLER))


def test_cancelling_a_code_from_another_business_is_not_found(businesses: tuple[Business, Business]) -> None:
    code = book(A)["confirmation_code"]

    failed(invoke("cancel_appointment", {"confirmation_code": code}, tenant=B, caller=CALLER), "not_found")

    [stored] = Booking.scan()
    assert (stored.tenant_id, stored.status) == (A, "booked")


def test_a_booking_with_one_business_does_not_take_the_same_slot_at_another(
        businesses: tuple[Business, Business]) -> None:
    book(B)

    a_slots = ok(invoke("check_availability", {"service": "tap repair", "date_from": "2030-03-12",
                                                "date_to": "2030-03-12"}, tenant=A))["slots"]
    assert "2030-03-12T10:00" in [slot["start"] for slot in a_slots]
    assert book(A)["start"] == "2030-03-12T10:00"
    assert sorted(stored.tenant_id for stored in Booking.scan()) == [A, B]


def test_search_never_returns_another_business_articles(businesses: tuple[Business, Business]) -> None:
    b_passages = ok(invoke("search_knowledge", {"query": "card payment guarantee", "limit": 5}, tenant=B))["passages"]

    assert [passage["article_id"] for passage in b_passages] == ["payment-methods"]
    assert b_passages[0]["text"] == "We take cash only, on the day."
    assert ok(invoke("search_knowledge", {"query": "guaranteed repairs"}, tenant=B)) == {"passages": []}
    assert ok(invoke("search_knowledge", {"query": "parking"}, tenant=A)) == {"passages": []}


def test_the_same_number_is_a_different_customer_at_each_business(businesses: tuple[Business, Business]) -> None:
    a_code = book(A)["confirmation_code"]

    at_b = ok(invoke("lookup_customer", {}, tenant=B, caller=CALLER))
    at_a = ok(invoke("lookup_customer", {}, tenant=A, caller=CALLER))

    assert at_b["name"] == "Sam Rivera" and at_b["upcoming_bookings"] == []
    assert at_a["name"] == "Jordan Lee"
    assert [made["confirmation_code"] for made in at_a["upcoming_bookings"]] == [a_code]


def test_prices_come_from_the_callers_business(businesses: tuple[Business, Business]) -> None:
    assert ok(invoke("get_pricing", {"service": "tap repair"}, tenant=A))["price"] == 95.0
    assert ok(invoke("get_pricing", {"service": "tap repair"}, tenant=B))["price"] == 120.0


@pytest.mark.parametrize("field", ["tenant_id", "tenant", "agent_id", "from"])
def test_arguments_cannot_name_another_business(businesses: tuple[Business, Business], field: str) -> None:
    failed(invoke("get_pricing", {"service": "tap repair", field: A}, tenant=B), "invalid_arguments")


def test_the_same_invocation_id_at_two_businesses_books_at_each(businesses: tuple[Business, Business]) -> None:
    invocation_id = "CA0123456789abcdef0123456789abcdef:call_shared"
    arguments = {"service": "tap repair", "slot_start": "2030-03-12T10:00", "customer_name": "Jordan Lee"}

    at_a = ok(invoke("book_appointment", arguments, tenant=A, invocation_id=invocation_id))
    at_b = ok(invoke("book_appointment", arguments, tenant=B, invocation_id=invocation_id))

    assert at_a["confirmation_code"] != at_b["confirmation_code"]
    assert sorted(stored.tenant_id for stored in Booking.scan()) == [A, B]
