"""The tool registry: checked at import, offered to the model as GA function tools, and the judge of arguments."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bridge.tool_invoker import parse_arguments
from voiceline.tools import (
    BRIDGE,
    REGISTRY,
    TOOLS,
    RegistryError,
    UnknownTool,
    argument_errors,
    build_registry,
    lambda_function_name,
    tools_for,
)

PRICING = REGISTRY["get_pricing"]


def test_every_tool_is_a_ga_function_tool_with_a_unique_name() -> None:
    assert len(REGISTRY) == len(TOOLS) == len({tool.name for tool in TOOLS})
    for tool in REGISTRY.values():
        definition = tool.realtime_definition()
        assert definition["type"] == "function" and definition["name"] == tool.name
        assert definition["description"] and definition["parameters"]["type"] == "object"
    assert {tool.name for tool in REGISTRY.values() if tool.runs_on == BRIDGE} == {"end_call", "transfer_call"}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


@pytest.mark.parametrize(("change", "complaint"), [
    ({"parameters": _object(service={"type": "text"})}, "not a valid JSON Schema"),
    ({"parameters": {"type": "object", "properties": {}}}, "additionalProperties false"),
    ({"parameters": _object(tenant_id={"type": "string"})}, "comes from the call context"),
    ({"parameters": _object(day={"type": "string", "format": "email"})}, "not checked"),
    ({"name": "get pricing!"}, "letters, digits"),
    ({"runs_on": "Get_Pricing"}, "short Lambda name"),
    ({"timeout_s": 0}, "positive"),
    ({"description": " "}, "description"),
])
def test_a_tool_the_model_or_the_bridge_could_not_use_is_refused(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(RegistryError, match=complaint):
        build_registry([dataclasses.replace(PRICING, **change)])


def test_two_tools_with_one_name_are_refused() -> None:
    with pytest.raises(RegistryError, match="defined twice"):
        build_registry([PRICING, dataclasses.replace(PRICING, description="another")])


def test_an_agents_tools_come_in_its_order_and_an_unknown_one_is_named() -> None:
    assert [tool.name for tool in tools_for(["end_call", "get_pricing"])] == ["end_call", "get_pricing"]
    with pytest.raises(UnknownTool, match="fly_to_the_moon"):
        tools_for(["get_pricing", "fly_to_the_moon"])


@pytest.mark.parametrize(("tool", "arguments", "message"), [
    ("book_appointment", {"service": "tap repair"}, "slot_start: required"),
    ("book_appointment", {"service": "x", "slot_start": "2026-02-30T10:00", "customer_name": "Jo"},
     "slot_start: '2026-02-30T10:00' is not a valid local date and time (YYYY-MM-DDTHH:MM"),
    ("check_availability", {"service": "x", "date_from": "tomorrow", "date_to": "2026-11-23"},
     "date_from: 'tomorrow' is not a valid date (YYYY-MM-DD)"),
    ("get_pricing", {"service": "x", "tenant_id": "tenant-b"}, "tenant_id: unexpected argument (allowed: service)"),
    ("lookup_customer", {"number": "+1555"}, "number: unexpected argument (this tool takes no arguments)"),
    ("get_pricing", {"service": 42}, "service: must be a string"),
    ("get_pricing", {"service": ""}, "service: must not be empty"),
    ("search_knowledge", {"query": "hours", "limit": 50}, "limit: must be at most 5"),
    ("check_service_area", {}, "arguments: give at least one of city, postcode"),
    ("cancel_appointment", {"confirmation_code": "no!"}, "confirmation_code: 'no!' is not in the expected form"),
    ("get_pricing", ["service"], "arguments: must be an object"),
])
def test_invalid_arguments_are_explained_in_words_the_model_can_act_on(tool: str, arguments: Any,
                                                                       message: str) -> None:
    problems = argument_errors(REGISTRY[tool], arguments)
    assert any(problem.startswith(message) for problem in problems), problems


def test_valid_arguments_have_no_problems() -> None:
    assert argument_errors(REGISTRY["book_appointment"], {"service": "tap repair", "slot_start": "2026-11-23T10:00",
                                                          "customer_name": "Jordan Lee"}) == []
    assert argument_errors(REGISTRY["lookup_customer"], {}) == []


@pytest.mark.parametrize(("raw", "error"), [
    ("{not json", "arguments are not valid JSON"),
    ('{"service": 5}', "service: must be a string"),
])
def test_the_bridge_answers_unparseable_or_invalid_arguments_with_an_error_output(raw: str, error: str) -> None:
    arguments, reply = parse_arguments(PRICING, raw)
    assert arguments is None and reply is not None
    assert reply["ok"] is False and reply["error"]["type"] == "invalid_arguments"
    assert reply["error"]["message"].startswith(error)


def test_empty_arguments_are_an_empty_object() -> None:
    assert parse_arguments(REGISTRY["lookup_customer"], "") == ({}, None)


def test_business_tools_are_named_after_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL_FUNCTION_PREFIX", "acme-prod-")
    assert lambda_function_name(PRICING) == "acme-prod-get-pricing"
    with pytest.raises(ValueError, match="runs in the bridge"):
        lambda_function_name(REGISTRY["end_call"])


def test_a_tool_definition_is_a_copy_the_caller_cannot_corrupt() -> None:
    definition = PRICING.realtime_definition()
    definition["parameters"]["properties"].clear()
    assert PRICING.realtime_definition()["parameters"]["properties"]
