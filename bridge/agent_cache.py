"""Agents as the bridge reads them at call start: always fresh, with the last good copy as a fallback.

A call reads its agent (one strongly consistent GetItem), unless the voice webhook vouched (in the call's
signed facts) for the very copy this task holds: then the copy is the agent as it stands, and the greeting
waits on no read. So a change saved through the admin API reaches the very next call either way. The copy
from the last successful read also stands in when a read fails or is slow, while it is younger than
`fallback_ttl_s`, so a DynamoDB hiccup does not cost a call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from bridge import setup_reads
from voiceline.agents import fingerprint, get_agent
from voiceline.models import Agent

READ_TIMEOUT_S = 2.0  # then the fallback copy, if any: the caller is already waiting

logger = Logger(service="voiceline-bridge", child=True)


def _read_consistently(agent_id: str) -> Agent | None:
    return get_agent(agent_id, consistent_read=True)


@dataclass(frozen=True)
class _Copy:
    read_at: float
    agent: Agent
    fingerprint: str


class AgentCache:
    def __init__(self, fallback_ttl_s: float, read: Callable[[str], Agent | None] = _read_consistently,
                 read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self._fallback_ttl_s = fallback_ttl_s
        self._read = read
        self._read_timeout_s = read_timeout_s
        self._entries: dict[str, _Copy] = {}

    def last_copy(self, agent_id: str) -> Agent | None:
        """The agent as last read, however old: a guess to act on before the fresh read arrives."""
        entry = self._entries.get(agent_id)
        return entry.agent if entry is not None else None

    def vouched_copy(self, agent_id: str, fingerprint: str) -> Agent | None:
        """The copy held, if it is the agent the voice webhook saw (its fingerprint): then it is the agent as
        stored, and needs no read."""
        entry = self._entries.get(agent_id)
        return entry.agent if entry is not None and entry.fingerprint == fingerprint else None

    async def get(self, agent_id: str) -> Agent | None:
        """The agent as stored now; None when it does not exist (a deleted agent is forgotten too)."""
        try:
            agent = await asyncio.wait_for(setup_reads.read(self._read, agent_id), self._read_timeout_s)
        except Exception as error:
            entry = self._entries.get(agent_id)
            if entry is None or time.monotonic() - entry.read_at >= self._fallback_ttl_s:
                raise
            logger.warning("agent read failed; using the last copy", agent_id=agent_id, error=repr(error),
                           copy_age_s=round(time.monotonic() - entry.read_at, 1))
            return entry.agent
        if agent is None:
            self._entries.pop(agent_id, None)
        else:
            self._entries[agent_id] = _Copy(time.monotonic(), agent, fingerprint(agent))
        return agent
