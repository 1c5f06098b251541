"""ECS task scale-in protection while the task carries calls, through the ECS agent's endpoint.

Set when the first call starts, renewed while calls last, cleared after the last one ends, so
that neither a scale-in nor a deployment stops a task in the middle of a call. A call only flips
the wanted state; the requests go out from a background task with a timeout, so a slow or
missing ECS agent never holds up a call. Outside ECS (no ECS_AGENT_URI) it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from dataclasses import dataclass

from aws_lambda_powertools import Logger

logger = Logger(service="voiceline-bridge", child=True)

STATE_PATH = "/task-protection/v1/state"


@dataclass(frozen=True)
class ProtectionTiming:
    expires_in_minutes: int = 15  # ECS lets protection lapse on its own if we stop renewing (a crash)
    renew_every_s: float = 300.0
    request_timeout_s: float = 2.0
    retry_after_s: float = 5.0


class TaskProtection:
    def __init__(self, agent_uri: str | None, timing: ProtectionTiming = ProtectionTiming()) -> None:
        self._url = agent_uri.rstrip("/") + STATE_PATH if agent_uri else None
        self._timing = timing
        self._calls = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.protected = False  # what the ECS agent last confirmed
        self.failures = 0

    @property
    def wanted(self) -> bool:
        return self._calls > 0

    def start(self) -> None:
        if self._url is not None:
            self._task = asyncio.create_task(self._keep_in_step(), name="task-protection")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def call_started(self) -> None:
        self._calls += 1
        if self._calls == 1:
            self._changed.set()

    def call_ended(self) -> None:
        self._calls = max(0, self._calls - 1)
        if self._calls == 0:
            self._changed.set()

    async def _keep_in_step(self) -> None:
        """Make the agent's state follow `wanted`; renew while protected; retry failures after a pause."""
        while True:
            wanted = self.wanted
            if wanted or self.protected:
                ok = await self._put(wanted)
                wait_s = self._timing.renew_every_s if ok else self._timing.retry_after_s
                if ok and not wanted:
                    wait_s = None  # cleared: nothing to renew until the next call
            else:
                wait_s = None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait_s)

    async def _put(self, enabled: bool) -> bool:
        body = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self._timing.expires_in_minutes
        try:
            reply = await asyncio.wait_for(asyncio.to_thread(self._request, json.dumps(body).encode()),
                                           self._timing.request_timeout_s + 0.5)
        except Exception as error:  # a timeout, a refused connection, a 5xx: try again shortly
            self.failures += 1
            logger.warning("task protection update failed", enabled=enabled, error=repr(error))
            return False
        if "failure" in reply or "protection" not in reply:
            self.failures += 1
            logger.warning("ECS agent refused task protection", enabled=enabled, reply=reply)
            return False
        self.protected = bool(reply["protection"].get("ProtectionEnabled"))
        return True

    def _request(self, body: bytes) -> dict:
        assert self._url is not None
        request = urllib.request.Request(self._url, data=body, method="PUT",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self._timing.request_timeout_s) as response:
            return json.loads(response.read() or b"{}")
