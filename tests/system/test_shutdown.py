"""SIGTERM to a real bridge process in the middle of two calls: drain, a last line, a transfer, nothing lost."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local.call_records import CallRecords
from local.call_simulator import CallReport, place_call
from local.seed import DEMO_TRANSFER_NUMBER
from local.stack import LocalStack, StackPorts
from tests.bridge.bridge_harness import until
from tests.system.conftest import call_config, finalised

pytestmark = pytest.mark.system

DRAIN_TIMEOUT_S = 3.0  # the calls go on this long after SIGTERM...
WIND_DOWN_S = 10.0  # ...then have this long to say a last line and be transferred
STOP_DEADLINE_S = DRAIN_TIMEOUT_S + WIND_DOWN_S + 15  # well inside ECS's 120 s, and bounds the test


@pytest.fixture
def draining_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack of its own: this test stops its bridge."""
    env = {"DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S), "DRAIN_WIND_DOWN_S": str(WIND_DOWN_S)}
    with LocalStack(ports=StackPorts.free(), log_dir=tmp_path / "logs", extra_env=env) as running:
        yield running


class Transcript:
    """The simulator's live transcript of one call, with when each line came."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    def has(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for _, line in self.lines)


async def test_sigterm_drains_two_calls_then_ends_them_with_a_last_line_and_a_transfer_losing_nothing(
        draining_stack: LocalStack, tmp_path: Path) -> None:
    stack = draining_stack
    records = CallRecords(stack.dynamodb_url)
    bridge = stack._processes["bridge"]
    transcripts = [Transcript(), Transcript()]
    calls = [asyncio.create_task(place_call(dataclasses.replace(
        call_config(stack, tmp_path / f"call-{n}"), on_line=transcripts[n]))) for n in range(2)]
    # Both conversations under way: the greeting played and the caller has started to answer.
    await until(lambda: all(t.has("caller:") for t in transcripts), 30, "both callers speaking")

    bridge.send_signal(signal.SIGTERM)
    sigterm_at = time.monotonic()

    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=2) as http:
        health = await http.get("/health")
        assert health.status_code == 503 and health.json() == {"status": "draining", "active_calls": 2}
        refused = await place_call(dataclasses.replace(call_config(stack, tmp_path / "refused"),
                                                       on_line=Transcript()))
        assert (refused.outcome, refused.close_code) == ("closed_by_bridge", 1013)
        assert refused.agent_audio_received_ms == 0
        # The two calls go on through the drain timeout.
        assert [session["state"] for session in (await http.get("/calls")).json()] == ["active", "active"]

    reports: list[CallReport] = await asyncio.wait_for(asyncio.gather(*calls), STOP_DEADLINE_S)
    exit_code = await asyncio.to_thread(bridge.wait, STOP_DEADLINE_S)
    stopped_after_s = time.monotonic() - sigterm_at
    assert exit_code == 0, stack.log("bridge")[-3000:]
    assert stopped_after_s < STOP_DEADLINE_S

    for report, transcript in zip(reports, transcripts, strict=True):
        assert report.ended_by == "transferred", (report.error, transcript.lines)
        assert report.transferred_to == DEMO_TRANSFER_NUMBER
        # Ended by the wind-down, not before it: the calls were allowed to go on.
        ended_at = next(at for at, line in transcript.lines if line.startswith("agent: ⇢ transferred"))
        assert ended_at - sigterm_at >= DRAIN_TIMEOUT_S

        record = await finalised(records, report.call_sid)
        assert record["status"] == "ended" and record["end_reason"] == "transferred"

        events = records.events(report.call_sid)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # nothing lost on the way out
        kinds = [e["kind"] for e in events]
        assert kinds[-1] == "call_ended" and kinds.count("call_ended") == 1, kinds
        assert json.loads(events[-1]["data"])["reason"] == "transferred"
        assert ("caller", "transcript") in [(e.get("role"), e["kind"]) for e in events]
        # The last line: asked for after the shutdown began, spoken before the transfer.
        shutdown_at, transfer_at = kinds.index("bridge_shutdown"), kinds.index("transfer")
        assert json.loads(events[shutdown_at]["data"]) == {"then": "transfer", "to": DEMO_TRANSFER_NUMBER}
        last_words = [e for e in events[shutdown_at:transfer_at] if e["kind"] == "transcript" and e["role"] == "agent"]
        assert last_words and last_words[-1]["text"]
        transfer = json.loads(events[transfer_at]["data"])
        assert (transfer["reason"], transfer["to"], transfer["outcome"]) == (
            "bridge_shutdown", DEMO_TRANSFER_NUMBER, "updated")
