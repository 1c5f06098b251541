"""Agents loaded at call start, cached briefly so a burst of calls costs one read."""

from __future__ import annotations

import asyncio
import time

from voiceline.agents import get_agent
from voiceline.models import Agent


class AgentCache:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Agent]] = {}

    async def get(self, agent_id: str) -> Agent | None:
        """The agent, from cache when fresh; an edit reaches the next call within the TTL."""
        entry = self._entries.get(agent_id)
        if entry and time.monotonic() - entry[0] < self._ttl_s:
            return entry[1]
        agent = await asyncio.to_thread(get_agent, agent_id)
        if agent is not None:
            self._entries[agent_id] = (time.monotonic(), agent)
        return agent
