"""Post-call summaries on the running local stack: the Calls stream carries the ended call to its function, which
asks the scripted text model; the summary lands on the Call, labelled as the stand-in's, and in the admin API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.admin_key import issue_key_in
from local.call_records import CallRecords
from local.call_simulator import place_call
from local.seed import DEMO_TENANT
from local.stack import LocalStack
from tests.system.conftest import call_config, finalised, free_demo_slot

pytestmark = pytest.mark.system
SUMMARY_TIMEOUT_S = 30.0


async def summary_of(records: CallRecords, call_sid: str) -> dict[str, Any]:
    record = await records.call_once(call_sid, lambda call: call.get("summary"), SUMMARY_TIMEOUT_S)
    assert record is not None, f"call {call_sid} got no summary within {SUMMARY_TIMEOUT_S}s"
    return json.loads(record["summary"])


async def test_an_ended_call_gets_a_summary_labelled_as_the_scripted_stand_ins(
        stack: LocalStack, records: CallRecords, wav_dir: Path) -> None:
    free_demo_slot(stack)
    report = await place_call(call_config(stack, wav_dir))
    await finalised(records, report.call_sid)

    summary = await summary_of(records, report.call_sid)

    # The demo conversation books a slot for Jordan Lee through book_appointment.
    assert (summary["source"], summary["model"]) == ("scripted stand-in", "scripted-stand-in")
    assert summary["outcome"] == "booked"
    assert summary["intent"] == "Hi, how much does it cost to fix a leaking tap?"
    assert summary["fields"]["customer_name"] == "Jordan Lee"
    assert summary["fields"]["confirmation_code"]

    key = await asyncio.to_thread(issue_key_in, stack.environment(), DEMO_TENANT, "summary test")
    detail = httpx.get(f"{stack.gateway_url}/api/calls/{report.call_sid}",
                       headers={"Authorization": f"Bearer {key}"}, timeout=15).json()
    assert detail["summary"] == summary
