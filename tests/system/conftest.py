"""The local stack, started once for the system tests and driven over real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from local.call_records import CallRecords
from local.call_simulator import CallConfig
from local.seed import DEMO_CUSTOMER_NUMBER, DEMO_NUMBER, DEMO_TENANT
from local.stack import ROOT, LocalStack, StackPorts

TOOLS_TOUR = ROOT / "local" / "conversations" / "tools_tour.json"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(ports=StackPorts.free(), log_dir=tmp_path_factory.mktemp("stack-logs")) as running:
        yield running


@pytest.fixture(scope="session")
def tour_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A second stack whose model follows the tools tour: every tool the demo call leaves out."""
    with LocalStack(ports=StackPorts.free(), conversation=TOOLS_TOUR,
                    log_dir=tmp_path_factory.mktemp("tour-stack-logs")) as running:
        yield running


@pytest.fixture(scope="session")
def records(stack: LocalStack) -> CallRecords:
    return CallRecords(stack.dynamodb_url)


def call_config(stack: LocalStack, wav_dir: Path, **overrides: Any) -> CallConfig:
    """The demo customer calling the demo number, with the stack's conversation."""
    return CallConfig(gateway_url=stack.gateway_url, to_number=DEMO_NUMBER, from_number=DEMO_CUSTOMER_NUMBER,
                      conversation=stack.conversation, wav_path=wav_dir / "call.wav",
                      twilio_api_url=stack.twilio_api_url,  # the script's agent hangs up through Twilio REST
                      on_line=lambda line: None, max_call_seconds=90, **overrides)


async def finalised(records: CallRecords, call_sid: str, timeout_s: float = 15) -> dict[str, Any]:
    """The Call once the bridge has written its end and Twilio's status callback has been recorded."""
    record = await records.call_once(call_sid, lambda call: call.get("end_reason") and call.get("twilio_status"),
                                     timeout_s)
    assert record is not None, f"call {call_sid} was not finalised within {timeout_s}s: {records.call(call_sid)}"
    return record


def free_demo_slot(stack: LocalStack) -> str:
    """Free the slot the demo conversation books and return its start: every demo call in a session books it, so a
    test that needs the booking to succeed must not depend on running first."""
    assert stack.script is not None
    [slot_start] = [json.loads(call.arguments)["slot_start"] for turn in stack.script.turns
                    for call in turn.agent.tool_calls if call.name == "book_appointment"]
    client = boto3.client("dynamodb", endpoint_url=stack.dynamodb_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    client.delete_item(TableName=stack.environment()["BOOKINGS_TABLE"],
                       Key={"tenant_resource": {"S": f"{DEMO_TENANT}#van-1"}, "slot_start": {"S": slot_start}})
    return slot_start


class ModelSessions:
    """The scripted model's own account of every Realtime session opened on it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def all(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base_url}/sessions", timeout=5).json()

    def opened_since(self, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = {session["id"] for session in before}
        return [session for session in self.all() if session["id"] not in known]


@pytest.fixture(scope="session")
def model_sessions(stack: LocalStack) -> ModelSessions:
    return ModelSessions(stack.model_url)


@pytest.fixture
def wav_dir(tmp_path: Path) -> Path:
    return tmp_path
