"""The admin API on the running local stack: an agent changed through the API answers the very next call with the
change, and that call shows up in the history with its transcript."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.admin_key import issue_key_in
from local.call_records import CallRecords
from local.call_simulator import place_call
from local.seed import DEMO_AGENT, DEMO_TENANT
from local.stack import LocalStack
from tests.system.conftest import call_config, finalised

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def demo_admin(stack: LocalStack) -> Iterator[httpx.Client]:
    """The demo business's admin API, with a key `make admin-key` made in the stack's own tables."""
    key = issue_key_in(stack.environment(), DEMO_TENANT, "system")
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"},
                      timeout=15) as client:
        yield client


async def test_a_change_reaches_the_next_call_which_shows_in_the_history_with_its_transcript(
        stack: LocalStack, demo_admin: httpx.Client, records: CallRecords, model_sessions: Any,
        wav_dir: Path) -> None:
    agent = demo_admin.get(f"/api/agents/{DEMO_AGENT}").json()
    changed = demo_admin.patch(f"/api/agents/{DEMO_AGENT}", json={"version": agent["version"], "voice": "cedar",
                                                                  "speed": 1.2})
    assert changed.status_code == 200, changed.text
    try:
        before = model_sessions.all()
        report = await place_call(call_config(stack, wav_dir))
        await finalised(records, report.call_sid)
        [session] = model_sessions.opened_since(before)
    finally:
        restored = demo_admin.patch(f"/api/agents/{DEMO_AGENT}", json={
            "version": changed.json()["version"], "voice": agent["voice"], "speed": agent["speed"]})
        assert restored.status_code == 200, restored.text

    # The bridge read the agent as changed a moment before (its fallback copy is 30 s good).
    assert (session["session"]["audio"]["output"]["voice"], session["session"]["audio"]["output"]["speed"]) == (
        "cedar", 1.2)

    page = demo_admin.get("/api/calls", params={"agent": DEMO_AGENT, "limit": 1})
    assert page.status_code == 200, page.text
    [newest] = page.json()["calls"]
    assert (newest["call_sid"], newest["status"], newest["end_reason"]) == (report.call_sid, "ended", "agent_hung_up")

    detail = demo_admin.get(f"/api/calls/{report.call_sid}").json()
    assert detail["turn_latency_p50_ms"] is not None and detail["greeting_latency_ms"] is not None
    recorded = records.events(report.call_sid)
    assert [(event["seq"], event["kind"]) for event in detail["events"]] == [
        (int(event["seq"]), event["kind"]) for event in recorded]
    said = [(event["role"], event["text"]) for event in detail["events"] if event["kind"] == "transcript"]
    assert said[0] == ("agent", "Thanks for calling Bright Plumbing, this is Ava. How can I help?")
