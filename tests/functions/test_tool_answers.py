"""The read-only tools through their real handlers, and the request contract every tool enforces.

Nothing here writes, so one seeded set of tables serves the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.functions.tool_calls import (
    OTHER_CALLER,
    Business,
    context_for,
    event,
    failed,
    handler,
    invoke,
    ok,
    seeded_tables,
)
from voiceline.tools import BRIDGE, REGISTRY

TENANT = "tenant-plumbing"
BUSINESS_TOOLS = sorted(name for name, tool in REGISTRY.items() if tool.runs_on != BRIDGE)


@pytest.fixture(scope="module", autouse=True)
def business() -> Iterator[Business]:
    business = Business(TENANT)
    with seeded_tables(business):
        yield business


# --- pricing ------------------------------------------------------------------------------------

def test_get_pricing_gives_a_fixed_price() -> None:
    output = ok(invoke("get_pricing", {"service": "dripping tap"}, tenant=TENANT))

    assert output == {"service": "Tap repair", "currency": "USD", "price": 95.0, "price_from": None,
                      "price_to": None, "notes": ""}


def test_get_pricing_gives_a_range_with_its_notes() -> None:
    output = ok(invoke("get_pricing", {"service": "Drain Unblocking"}, tenant=TENANT))

    assert (output["price"], output["price_from"], output["price_to"]) == (None, 110.0, 250.0)
    assert "camera survey" in output["notes"]


def test_get_pricing_matches_other_forms_of_the_words() -> None:
    assert ok(invoke("get_pricing", {"service": "boiler servicing"}, tenant=TENANT))["service"] == "Boiler service"


def test_get_pricing_for_a_service_not_offered_lists_those_that_are() -> None:
    message = failed(invoke("get_pricing", {"service": "roof tiling"}, tenant=TENANT), "unknown_service")

    assert "Boiler service, Drain unblocking, Tap repair" in message


# --- service area -------------------------------------------------------------------------------

@pytest.mark.parametrize(("postcode", "area"), [("10001", "Chelsea, Manhattan"), ("10001-4521", "Chelsea, Manhattan"),
                                                 ("sw1a 1aa", "Westminster"), ("SW1A1AA", "Westminster")])
def test_service_area_by_postcode_ignores_case_spaces_and_zip_plus_four(postcode: str, area: str) -> None:
    output = ok(invoke("check_service_area", {"postcode": postcode}, tenant=TENANT))

    assert output["served"] is True
    assert output["area"] == area


@pytest.mark.parametrize("city", ["Hoboken", "hoboken", "JERSEY  CITY", "jersey city"])
def test_service_area_by_city_ignores_case_and_spacing(city: str) -> None:
    assert ok(invoke("check_service_area", {"city": city}, tenant=TENANT))["served"] is True


def test_service_area_city_counts_when_the_postcode_is_unknown() -> None:
    output = ok(invoke("check_service_area", {"postcode": "07030", "city": "Hoboken"}, tenant=TENANT))

    assert output == {"served": True, "area": "Hoboken", "postcode": None}


def test_outside_the_service_area_is_an_answer_naming_the_area_covered() -> None:
    output = ok(invoke("check_service_area", {"postcode": "90210", "city": "Beverly Hills"}, tenant=TENANT))

    assert output["served"] is False
    assert output["covered_cities"] == ["Hoboken", "Jersey City"]
    assert "90210" in output["message"]


# --- customers (the writes are in test_tools.py) ------------------------------------------------

def test_lookup_customer_says_plainly_when_the_number_is_unknown() -> None:
    output = ok(invoke("lookup_customer", {}, tenant=TENANT, caller=OTHER_CALLER))

    assert output["known"] is False
    assert "name" not in output
    assert "new" in output["message"]


# --- knowledge ----------------------------------------------------------------------------------

def test_search_knowledge_ranks_the_article_that_answers_first() -> None:
    passages = ok(invoke("search_knowledge", {"query": "card payment"}, tenant=TENANT))["passages"]

    assert passages[0]["article_id"] == "payment-methods"
    assert passages[0]["title"] == "Payment methods"
    assert "debit card" in passages[0]["text"]
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)


def test_search_knowledge_matches_word_forms_not_exact_strings() -> None:
    output = ok(invoke("search_knowledge", {"query": "are repairs guaranteed?"}, tenant=TENANT))

    assert output["passages"][0]["article_id"] == "guarantee"


def test_search_knowledge_never_matches_inside_other_words() -> None:
    # "ash" is inside "cash", "ours" inside "hours": only whole words count.
    assert ok(invoke("search_knowledge", {"query": "ash ours"}, tenant=TENANT)) == {"passages": []}


def test_search_knowledge_with_only_filler_words_finds_nothing() -> None:
    assert ok(invoke("search_knowledge", {"query": "do you"}, tenant=TENANT)) == {"passages": []}


def test_search_knowledge_returns_at_most_limit_passages() -> None:
    output = ok(invoke("search_knowledge", {"query": "repair emergency payment hours", "limit": 2}, tenant=TENANT))

    assert len(output["passages"]) == 2


# --- the contract: arguments and requests are checked before any work ---------------------------

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
def test_invalid_arguments_are_refused_naming_the_field(tool: str, arguments: dict[str, Any], field: str) -> None:
    message = failed(invoke(tool, arguments, tenant=TENANT), "invalid_arguments")

    assert field in message


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
], ids=["no-call", "no-tenant", "empty-tenant", "tenant-with-key-separator", "wrong-tool", "no-tool",
        "no-arguments", "empty-invocation-id", "not-an-object"])
def test_malformed_requests_are_refused_before_any_work(change: Any, words: str) -> None:
    reply = handler("get_pricing")(change(event("get_pricing", {"service": "tap repair"}, TENANT)),
                                   context_for("get_pricing"))

    assert words in failed(reply, "invalid_request")


@pytest.mark.parametrize("tool", BUSINESS_TOOLS)
def test_every_tool_function_refuses_another_tools_request(tool: str) -> None:
    other = "get_pricing" if tool != "get_pricing" else "take_message"
    request_event = {**event(tool, {}, TENANT), "tool": other}

    assert tool in failed(handler(tool)(request_event, context_for(tool)), "invalid_request")
