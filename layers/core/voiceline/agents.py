"""Reading agents and the number → agent routing table."""

from __future__ import annotations

from voiceline.models import Agent, PhoneNumber


def agent_for_number(e164: str) -> tuple[PhoneNumber, Agent] | None:
    """The enabled agent a dialled number routes to, or None when nobody should answer."""
    try:
        number = PhoneNumber.get(e164)
        agent = Agent.get(number.agent_id)
    except (PhoneNumber.DoesNotExist, Agent.DoesNotExist):
        return None
    if not agent.enabled or agent.tenant_id != number.tenant_id:
        return None
    return number, agent


def get_agent(agent_id: str) -> Agent | None:
    try:
        return Agent.get(agent_id)
    except Agent.DoesNotExist:
        return None
