"""The tool Lambdas through their real handlers: the request contract, and each read-mostly tool's answers."""

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
from voiceline.models import Booking, TenantData
from voiceline.tool_contract import INTERNAL_ERROR_MESSAGE
from voiceline.tools import BRIDGE, REGISTRY

TENANT = "tenant-plumbing"
BUSINESS_TOOLS = sorted(name for name, tool in REGISTRY.items() if tool.runs_on != BRIDGE)


@pytest.fixture
def business(dynamodb: None) -> Business:
    business = Business(TENANT)
    seed_business(business)
    return business


# --- pricing ------------------------------------------------------------------------------------

def test_get_pricing_gives_a_fixed_price(business: Business) -> None:
    output = ok(invoke("get_pricing", {"service": "dripping tap"}, tenant=TENANT))

    assert output == {"service": "Tap repair", "currency": "USD", "price": 95.0, "price_from": None,
                      "price_to": None, "notes": ""}


def test_get_pricing_gives_a_range_with_its_notes(business: Business) -> None:
    output = ok(invoke("get_pricing", {"service": "Drain Unblocking"}, tenant=TENANT))

    assert (output["price"], output["price_from"], output["price_to"]) == (None, 110.0, 250.0)
    assert "camera survey" in output["notes"]


def test_get_pricing_matches_other_forms_of_the_words(business: Business) -> None:
    assert ok(invoke("get_pricing", {"service": "boiler servicing"}, tenant=TENANT))["service"] == "Boiler service"


def test_get_pricing_for_a_service_not_offered_lists_those_that_are(business: Business) -> None:
    message = failed(invoke("get_pricing", {"service": "roof tiling"}, tenant=TENANT), "unknown_service")

    assert "Boiler service, Drain unblocking, Tap repair" in message


# --- service area -------------------------------------------------------------------------------

@pytest.mark.parametrize(("postcode", "area"), [("10001", "Chelsea, Manhattan"), ("10001-4521", "Chelsea, Manhattan"),
                                                 ("sw1a 1aa", "Westminster"), ("SW1A1AA", "Westminster")])
def test_service_area_by_postcode_ignores_case_spaces_and_zip_plus_four(business: Business, postcode: str,
                                                                        area: str) -> None:
    output = ok(invoke("check_service_area", {"postcode": postcode}, tenant=TENANT))

    assert output["served"] is True
    assert output["area"] == area


@pytest.mark.parametrize("city", ["Hoboken", "hoboken", "JERSEY  CITY", "jersey city"])
def test_service_area_by_city_ignores_case_and_spacing(business: Business, city: str) -> None:
    assert ok(invoke("check_service_area", {"city": city}, tenant=TENANT))["served"] is True


def test_service_area_city_counts_when_the_postcode_is_unknown(business: Business) -> None:
    output = ok(invoke("check_service_area", {"postcode": "07030", "city": "Hoboken"}, tenant=TENANT))

    assert output == {"served": True, "area": "Hoboken", "postcode": None}


def test_outside_the_service_area_is_an_answer_naming_the_area_covered(business: Business) -> None:
    output = ok(invoke("check_service_area", {"postcode": "90210", "city": "Beverly Hills"}, tenant=TENANT))

    assert output["served"] is False
    assert output["covered_cities"] == ["Hoboken", "Jersey City"]
    assert "90210" in output["message"]


# --- customers ----------------------------------------------------------------------------------

def test_lookup_customer_gives_name_notes_and_bookings_for_the_callers_number(
        business: Business, monkeypatch: pytest.MonkeyPatch) -> None:
    booking.book(TENANT, "boiler service", "2030-01-08T09:00", "Jordan Lee", CALLER, now=datetime(2030, 1, 1, tzinfo=UTC))
    upcoming = booking.book(TENANT, "tap repair", "2030-03-12T10:00", "Jordan Lee", CALLER,
                            now=datetime(2030, 1, 1, tzinfo=UTC))
    booking.book(TENANT, "tap repair", "2030-03-12T11:00", "Someone Else", OTHER_CALLER,
                 now=datetime(2030, 1, 1, tzinfo=UTC))
    freeze_clock(monkeypatch, datetime(2030, 3, 1, 12, tzinfo=UTC))

    output = ok(invoke("lookup_customer", {}, tenant=TENANT, caller=CALLER))

    assert output["known"] is True
    assert (output["name"], output["notes"]) == ("Jordan Lee", "Prefers morning visits.")
    assert output["upcoming_bookings"] == [{"confirmation_code": upcoming["confirmation_code"],
                                            "service": "Tap repair", "start": "2030-03-12T10:00",
                                            "status": "booked"}]
    assert [past["start"] for past in output["past_bookings"]] == ["2030-01-08T09:00"]


def test_lookup_customer_says_plainly_when_the_number_is_unknown(business: Business) -> None:
    output = ok(invoke("lookup_customer", {}, tenant=TENANT, caller=OTHER_CALLER))

    assert output["known"] is False
    assert "name" not in output
    assert "new" in output["message"]


# --- knowledge ----------------------------------------------------------------------------------

def test_search_knowledge_ranks_the_article_that_answers_first(business: Business) -> None:
    output = ok(invoke("search_knowledge", {"query": "card payment"}, tenant=TENANT))

    passages = output["passages"]
    assert passages[0]["article_id"] == "payment-methods"
    assert passages[0]["title"] == "Payment methods"
    assert "debit card" in passages[0]["text"]
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)


def test_search_knowledge_matches_word_forms_not_exact_strings(business: Business) -> None:
    output = ok(invoke("search_knowledge", {"query": "are repairs guaranteed?"}, tenant=TENANT))

    assert output["passages"][0]["article_id"] == "guarantee"


def test_search_knowledge_never_matches_inside_other_words(business: Business) -> None:
    # "ash" is inside "cash", "ours" inside "hours": whole words only.
    assert ok(invoke("search_knowledge", {"query": "ash ours"}, tenant=TENANT)) == {"passages": []}


def test_search_knowledge_returns_at_most_limit_passages(business: Business) -> None:
    output = ok(invoke("search_knowledge", {"query": "repair emergency payment hours", "limit": 2}, tenant=TENANT))

    assert len(output["passages"]) == 2


# --- messages -----------------------------------------------------------------------------------

def stored_messages(tenant: str) -> list[dict[str, Any]]:
    return list(tenant_data.of_kind(tenant, MESSAGE).values())


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
    arguments = {"message": "Please call about a quote.", "callback_requested": True}
    request_event = event("take_message", arguments, TENANT)

    first = handler("take_message")(request_event, context_for("take_message"))
    retry = handler("take_message")(request_event, context_for("take_message"))

    assert ok(retry) == ok(first)
    assert len(stored_messages(TENANT)) == 1


# --- the contract: bad arguments, bad requests, failures ----------------------------------------

@pytest.mark.parametrize(("tool", "arguments", "field"), [
    ("get_pricing", {}, "service: required"),
    ("get_pricing", {"service": ""}, "service: must not be empty"),
    ("check_availability", {"service": "tap repair", "date_from": "2030-02-30", "date_to": "2030-03-01"},
     "date_from"),
    ("check_availability", {"service": "tap repair", "date_from": "2030-03-12"}, "date_to: required"),
    ("book_appointment", {"service": "tap repair", "slot_start": "tomorrow at 9", "customer_name": "Jo"},
     "slot_start"),
    ("book_appointment", {"service": "tap repair", "slot_start": "2030-03-12T10:00"}, "customer_name: required"),
    ("cancel_appointment", {"confirmation_code": "no such code!"}, "confirmation_code"),
    ("check_service_area", {}, "postcode"),
    ("lookup_customer", {"tenant_id": "tenant-other"}, "tenant_id: unexpected argument"),
    ("search_knowledge", {"query": "hours", "limit": 50}, "limit: must be at most 5"),
    ("take_message", {"message": "Hi", "callback_requested": "yes"}, "callback_requested: must be true or false"),
])
def test_invalid_arguments_are_refused_naming_the_field(business: Business, tool: str, arguments: dict[str, Any],
                                                        field: str) -> None:
    message = failed(invoke(tool, arguments, tenant=TENANT), "invalid_arguments")

    assert field in message


def test_invalid_arguments_do_no_work(business: Business) -> None:
    failed(invoke("book_appointment", {"service": "tap repair", "slot_start": "2030-03-12T10:00",
                                       "customer_name": "Jo", "when": "now"}, tenant=TENANT), "invalid_arguments")

    assert list(Booking.scan()) == []


def without(mapping: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in names}


@pytest.mark.parametrize(("change", "words"), [
    (lambda e: without(e, "call"), "call must be an object"),
    (lambda e: {**e, "call": without(e["call"], "tenant_id")}, "tenant_id"),
    (lambda e: {**e, "call": {**e["call"], "tenant_id": ""}}, "tenant_id"),
    (lambda e: {**e, "call": {**e["call"], "tenant_id": "tenant-a#van-1"}}, "tenant_id"),
    (lambda e: {**e, "tool": "book_appointment"}, "not 'book_appointment'"),
    (lambda e: without(e, "tool"), "this function runs get_pricing"),
    (lambda e: without(e, "arguments"), "no arguments"),
    (lambda e: {**e, "invocation_id": ""}, "invocation_id"),
    (lambda e: [e], "JSON object"),
], ids=["no-call", "no-tenant", "empty-tenant", "tenant-with-separator", "wrong-tool", "no-tool", "no-arguments",
        "empty-invocation-id", "not-an-object"])
def test_malformed_requests_are_refused_before_any_work(business: Business, change: Any, words: str) -> None:
    reply = handler("get_pricing")(change(event("get_pricing", {"service": "tap repair"}, TENANT)),
                                   context_for("get_pricing"))

    assert words in failed(reply, "invalid_request")


@pytest.mark.parametrize("tool", BUSINESS_TOOLS)
def test_every_tool_function_checks_its_own_tool_name(business: Business, tool: str) -> None:
    other = "get_pricing" if tool != "get_pricing" else "take_message"
    request_event = {**event(tool, {}, TENANT), "tool": other}

    failed(handler(tool)(request_event, context_for(tool)), "invalid_request")


def test_a_dynamodb_failure_becomes_a_safe_internal_error(business: Business) -> None:
    table = TenantData.Meta.table_name
    TenantData.delete_table()

    message = failed(invoke("get_pricing", {"service": "tap repair"}, tenant=TENANT), "internal_error")

    assert message == INTERNAL_ERROR_MESSAGE
    assert table not in message and TENANT not in message


def test_a_failing_write_is_not_remembered_so_a_retry_runs_again(business: Business) -> None:
    arguments = {"message": "Please call back.", "callback_requested": True}
    request_event = event("take_message", arguments, TENANT)
    saved = tenant_data.put

    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("DynamoDB is unreachable")

    tenant_data.put = unavailable
    try:
        failed(handler("take_message")(request_event, context_for("take_message")), "internal_error")
    finally:
        tenant_data.put = saved

    ok(handler("take_message")(request_event, context_for("take_message")))
    assert len(stored_messages(TENANT)) == 1
