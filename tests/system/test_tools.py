"""The agent's tools end to end: simulator → gateway → bridge → Lambda Invoke API → tool handler → DynamoDB (moto).

The demo call prices, checks availability, books, answers from the knowledge base and hangs up;
the tools tour covers the service area, the customer lookup, a cancellation, a message and a transfer.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from local.call_records import CallRecords
from local.call_simulator import place_call
from local.seed import DEMO_CUSTOMER_NUMBER, DEMO_TENANT, DEMO_TRANSFER_NUMBER
from local.stack import LocalStack
from tests.system.conftest import call_config, finalised, free_demo_slot

pytestmark = pytest.mark.system


def _tool_calls(records: CallRecords, call_sid: str) -> list[dict[str, Any]]:
    return [json.loads(event["data"]) for event in records.events(call_sid) if event["kind"] == "tool_call"]


def _by_name(tool_calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last call of each tool: the call-start lookup comes before the model's own."""
    return {tool_call["name"]: tool_call for tool_call in tool_calls}


async def test_two_demo_calls_use_their_tools_and_race_for_one_slot_that_only_one_gets(
        stack: LocalStack, records: CallRecords, model_sessions: Any, tmp_path: Path) -> None:
    slot_start = free_demo_slot(stack)
    before = model_sessions.all()

    reports = await asyncio.gather(place_call(call_config(stack, tmp_path / "first")),
                                   place_call(call_config(stack, tmp_path / "second")))

    booked = []
    for report in reports:
        assert report.ended_by == "agent_hung_up", report.error
        record = await finalised(records, report.call_sid)
        assert record["end_reason"] == "agent_hung_up"
        tool_calls = _tool_calls(records, report.call_sid)
        assert [call["name"] for call in tool_calls] == [
            "lookup_customer", "get_pricing", "lookup_customer", "check_availability", "book_appointment",
            "search_knowledge", "end_call"]
        assert tool_calls[0]["call_id"] == "call-start"  # looked up by the bridge for the greeting
        assert all(call["duration_ms"] >= 0 for call in tool_calls)
        tools = _by_name(tool_calls)
        assert tools["get_pricing"]["output"]["output"]["price"] == 95.0
        assert tools["lookup_customer"]["output"]["output"]["name"] == "Jordan Lee"
        assert tools["check_availability"]["output"]["output"]["timezone"] == "America/New_York"
        passages = tools["search_knowledge"]["output"]["output"]["passages"]
        assert passages[0]["article_id"] == "payment-methods"
        assert tools["end_call"]["outcome"] == "ok"
        [hang_up] = [json.loads(e["data"]) for e in records.events(report.call_sid) if e["kind"] == "hang_up"]
        assert hang_up["outcome"] == "updated"
        assert record["tool_calls"] == len(tool_calls)
        booked.append((report.call_sid, tools["book_appointment"]))

    outcomes = sorted(booking["outcome"] for _, booking in booked)
    assert outcomes == ["ok", "tool_error"]
    [(winner, won)] = [(sid, booking) for sid, booking in booked if booking["outcome"] == "ok"]
    [(_, lost)] = [(sid, booking) for sid, booking in booked if booking["outcome"] == "tool_error"]
    assert lost["output"]["error"]["type"] == "slot_taken"
    [booking] = [b for b in records.bookings(DEMO_TENANT, "van-1") if b["slot_start"] == slot_start]
    assert booking["confirmation_code"] == won["output"]["output"]["confirmation_code"]
    assert (booking["call_sid"], booking["caller_number"], booking["status"]) == (
        winner, DEMO_CUSTOMER_NUMBER, "booked")

    for session in model_sessions.opened_since(before):
        assert "Jordan Lee" in session["session"]["instructions"]  # the call-start lookup filled it in
        assert {tool["name"] for tool in session["session"]["tools"]} >= {"book_appointment", "end_call"}
        assert session["undeclared_tool_calls"] == []


async def test_tools_tour_checks_the_area_finds_the_customer_takes_a_message_and_transfers(
        tour_stack: LocalStack, tmp_path: Path) -> None:
    records = CallRecords(tour_stack.dynamodb_url)

    report = await place_call(call_config(tour_stack, tmp_path))

    assert report.ended_by == "transferred", report.error
    assert (report.transferred_to, report.transfer_caller_id) == (DEMO_TRANSFER_NUMBER, DEMO_CUSTOMER_NUMBER)
    record = await finalised(records, report.call_sid)
    assert record["end_reason"] == "transferred"
    tools = _by_name(_tool_calls(records, report.call_sid))
    assert {name: call["outcome"] for name, call in tools.items()} == {
        "lookup_customer": "ok", "check_service_area": "ok", "cancel_appointment": "tool_error",
        "take_message": "ok", "transfer_call": "ok"}
    assert tools["check_service_area"]["output"]["output"]["served"] is True
    assert tools["cancel_appointment"]["output"]["error"]["type"] == "not_found"
    messages = [json.loads(item["data"]) for item in records.tenant_items(DEMO_TENANT, "message#")]
    [message] = [message for message in messages if message["call_sid"] == report.call_sid]
    assert (message["callback_requested"], message["caller_number"]) == (True, DEMO_CUSTOMER_NUMBER)
    [transfer] = [json.loads(e["data"]) for e in records.events(report.call_sid) if e["kind"] == "transfer"]
    assert (transfer["to"], transfer["outcome"]) == (DEMO_TRANSFER_NUMBER, "updated")
