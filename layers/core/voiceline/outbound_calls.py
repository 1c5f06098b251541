"""Placing an outbound call: Twilio rings the callee from the agent's number, then the voice webhook takes over.

Twilio first (only Twilio can name the call), then the Call record. A record that cannot be
written hangs the call up again, so no call runs that the history does not know of.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from voiceline import calls
from voiceline.agents import tenant_agent
from voiceline.phone_numbers import number_for_agent
from voiceline.twilio_account import TwilioAccount, TwilioFailure, Webhooks

logger = logging.getLogger("voiceline.outbound_calls")

# What Twilio's answering machine detection runs in, for each agent setting: "Enable" answers as soon as it
# knows, "DetectMessageEnd" waits for the end of the machine's greeting so a message lands after the beep.
MACHINE_DETECTION = {"off": None, "hang_up": "Enable", "leave_message": "DetectMessageEnd"}


class AgentUnavailable(Exception):
    """The agent cannot place calls: it is disabled, or no number of the tenant is assigned to it."""


class UnknownVariables(ValueError):
    """Variables the agent's templates do not declare (Agent.template_variables): most likely a typo."""

    def __init__(self, unknown: list[str], declared: list[str]) -> None:
        super().__init__(f"unknown variables {', '.join(unknown)}; the agent declares: {', '.join(declared) or 'none'}")
        self.unknown = unknown


@dataclass(frozen=True)
class OutboundCall:
    call_sid: str
    agent_id: str
    from_number: str
    to_number: str
    twilio_status: str
    machine_detection: str | None


def place_outbound_call(account: TwilioAccount, tenant_id: str, agent_id: str, to_number: str,
                        variables: Mapping[str, str], webhooks: Webhooks) -> OutboundCall:
    agent = tenant_agent(tenant_id, agent_id)
    unknown = sorted(set(variables) - set(agent.template_variables or ()))
    if unknown:
        raise UnknownVariables(unknown, sorted(agent.template_variables or ()))
    if not agent.enabled:
        raise AgentUnavailable(f"agent {agent_id} is disabled")
    number = number_for_agent(tenant_id, agent_id)
    if number is None:
        raise AgentUnavailable(f"agent {agent_id} has no phone number to call from; assign one first")
    machine_detection = MACHINE_DETECTION.get(agent.answering_machine)
    placed = account.place_call(to_number, number.e164, webhooks, machine_detection)
    try:
        calls.create_call(placed.sid, tenant_id, agent_id, number.e164, to_number, "outbound",
                          variables=dict(variables))
    except Exception:
        try:
            account.hang_up(placed.sid)
        except TwilioFailure as failure:
            logger.error("outbound call %s runs without a record: hanging it up failed (%s)", placed.sid,
                         failure.message)
        raise
    return OutboundCall(placed.sid, agent_id, number.e164, to_number, placed.status, machine_detection)
