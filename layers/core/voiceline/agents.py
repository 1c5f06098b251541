"""Agents: reading them for calls, the number → agent routing table, and configuring them per tenant."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from voiceline import stream_token
from voiceline.models import Agent, Call, PhoneNumber
from voiceline.ownership import condition_failed, owned_item


def agent_for_number(e164: str) -> tuple[PhoneNumber, Agent] | None:
    """The enabled agent a dialled number routes to, or None when nobody should answer."""
    try:
        number = PhoneNumber.get(e164)
        if number.agent_id is None:  # bought or imported, not yet assigned to an agent
            return None
        agent = Agent.get(number.agent_id)
    except (PhoneNumber.DoesNotExist, Agent.DoesNotExist):
        return None
    if not agent.enabled or agent.tenant_id != number.tenant_id:
        return None
    return number, agent


def fingerprint(agent: Agent) -> str:
    """A short hash of everything stored for the agent: equal fingerprints are the same agent, however it was
    saved (the admin API bumps `version`; an edit straight to the table need not)."""
    stored = json.dumps(agent.serialize(), sort_keys=True, default=str)
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


def call_facts(agent: Agent, call: Call) -> stream_token.CallFacts:
    """What the voice webhook vouches for to the bridge about a call it connects (see voiceline.stream_token)."""
    return stream_token.CallFacts(fingerprint(agent), call.from_number, call.to_number, call.direction,
                                  has_variables=bool(call.variables))


def get_agent(agent_id: str, consistent_read: bool = False) -> Agent | None:
    try:
        return Agent.get(agent_id, consistent_read=consistent_read)
    except Agent.DoesNotExist:
        return None


# --- Configuring agents (the admin API): always within one tenant, every change versioned ---------

# The attributes a business sets; agent_id, tenant_id, version and updated_at are ours.
SETTINGS = ("name", "business_name", "language", "timezone", "template_variables", "instructions", "greeting",
            "voice", "speed", "model", "turn_detection", "noise_reduction", "transcription_model",
            "transcription_language", "tools", "transfer_number", "max_duration_s", "silence_timeout_s", "enabled",
            "wait_for_callee", "answering_machine", "voicemail_message", "retention_ratio", "truncate_on_barge_in",
            "stable_instructions", "own_speech_as_text", "summary_schema")


class AgentNotFound(LookupError):
    """No such agent for this tenant (another tenant's agent is not found either)."""


class VersionConflict(Exception):
    """The agent changed since the caller read it."""

    def __init__(self, current_version: int) -> None:
        super().__init__(f"the agent is at version {current_version}")
        self.current_version = current_version


def new_agent_id() -> str:
    return f"agent-{secrets.token_hex(8)}"


def settings_of(agent: Agent) -> dict[str, Any]:
    return {name: getattr(agent, name) for name in SETTINGS}


def tenant_agent(tenant_id: str, agent_id: str) -> Agent:
    """The tenant's agent, read consistently; AgentNotFound when it is missing or another tenant's."""
    agent = owned_item(Agent, agent_id, tenant_id)
    if agent is None:
        raise AgentNotFound(agent_id)
    return agent


def list_agents(tenant_id: str) -> list[Agent]:
    return list(Agent.tenant_index.query(tenant_id))


def create_agent(tenant_id: str, settings: Mapping[str, Any]) -> Agent:
    agent = Agent(new_agent_id(), tenant_id=tenant_id, version=1, updated_at=datetime.now(UTC), **_only(settings))
    agent.save(condition=Agent.agent_id.does_not_exist())
    return agent


def update_agent(tenant_id: str, agent_id: str, expected_version: int, settings: Mapping[str, Any]) -> Agent:
    """Apply `settings` over the agent if it is still at `expected_version`, as version + 1.

    The write is conditional on the version, so of two editors who read the same version only one wins;
    the other gets VersionConflict. Attributes outside SETTINGS are kept as they are.
    """
    agent = tenant_agent(tenant_id, agent_id)
    if agent.version != expected_version:
        raise VersionConflict(int(agent.version))
    for name, value in _only(settings).items():
        setattr(agent, name, value)
    agent.version = expected_version + 1
    agent.updated_at = datetime.now(UTC)
    try:
        agent.save(condition=(Agent.version == expected_version) & (Agent.tenant_id == tenant_id))
    except PutError as error:
        if not condition_failed(error):
            raise
        raise VersionConflict(int(tenant_agent(tenant_id, agent_id).version)) from None
    return agent


class AgentInUse(Exception):
    """The agent still answers phone numbers: deleting it would leave their callers with nobody."""

    def __init__(self, numbers: list[str]) -> None:
        super().__init__(", ".join(numbers))
        self.numbers = numbers


def delete_agent(tenant_id: str, agent_id: str) -> None:
    """Delete the agent, unless a number still routes to it (AgentInUse)."""
    numbers = [number.e164 for number in
               PhoneNumber.tenant_index.query(tenant_id, filter_condition=PhoneNumber.agent_id == agent_id)]
    if numbers:
        raise AgentInUse(numbers)
    try:
        Agent(agent_id).delete(condition=Agent.tenant_id == tenant_id)
    except DeleteError as error:
        if not condition_failed(error):
            raise
        raise AgentNotFound(agent_id) from None


def _only(settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"not agent settings: {sorted(unknown)}")
    return dict(settings)


