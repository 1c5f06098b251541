"""Outbound calls with answering machine detection: no Realtime session until a person has answered.

Twilio runs AMD before it fetches the voice webhook (MachineDetection=Enable), so the webhook knows
who answered before any media stream exists; a machine gets TwiML that hangs up, and the bridge,
the only place that opens an OpenAI connection, never hears of the call. The scripted model counts
every WebSocket session opened on it, over real sockets.
"""

from __future__ import annotations

import httpx
import pytest

from local.call_records import CallRecords
from local.stack import LocalStack
from tests.system.conftest import ModelSessions, finalised
from tests.system.test_numbers_and_outbound import CALL_WAIT_S, admin, buy_number, new_agent, twilio

pytestmark = pytest.mark.system
__all__ = ["admin", "twilio"]  # module fixtures shared with the numbers and outbound tests


def _place(admin: httpx.Client, twilio: httpx.Client, agent_id: str, to: str) -> dict:
    response = admin.post("/api/calls", json={"agent_id": agent_id, "to": to})
    assert response.status_code == 201, response.text
    outcome = twilio.get(f"/local/calls/{response.json()['call_sid']}", params={"wait": CALL_WAIT_S}).json()
    assert outcome["settled"], outcome
    return outcome


async def test_an_outbound_call_a_machine_answers_never_opens_a_realtime_connection(
        stack: LocalStack, admin: httpx.Client, twilio: httpx.Client, records: CallRecords,
        model_sessions: ModelSessions) -> None:
    agent = new_agent(admin, answering_machine="hang_up")
    buy_number(admin, "555", agent["agent_id"])
    machine = "+15557650001"
    assert twilio.put(f"/local/callees/{machine}", json={"answers": "machine"}).status_code == 200

    before = model_sessions.all()
    outcome = _place(admin, twilio, agent["agent_id"], machine)

    assert outcome["call"]["answered_by"] == "machine_start"
    assert model_sessions.opened_since(before) == []
    call = await finalised(records, outcome["call"]["sid"])
    assert (call["end_reason"], call["answered_by"]) == ("answering_machine", "machine_start")


async def test_the_same_agent_calling_a_person_opens_exactly_one_realtime_connection(
        stack: LocalStack, admin: httpx.Client, twilio: httpx.Client, model_sessions: ModelSessions) -> None:
    agent = new_agent(admin, answering_machine="hang_up")
    buy_number(admin, "555", agent["agent_id"])

    before = model_sessions.all()
    outcome = _place(admin, twilio, agent["agent_id"], "+15557650002")

    assert outcome["call"]["answered_by"] == "human"
    assert len(model_sessions.opened_since(before)) == 1
