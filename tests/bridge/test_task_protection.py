"""Task scale-in protection against a local stand-in for the ECS agent's endpoint, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.task_protection import STATE_PATH, ProtectionTiming, TaskProtection
from local.asgi_server import serving
from tests.bridge.bridge_harness import until

FAST = ProtectionTiming(expires_in_minutes=15, renew_every_s=0.3, request_timeout_s=0.3, retry_after_s=0.1)


class EcsAgent:
    """Records every PUT; can be told to stall or refuse, as an overloaded agent might."""

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []
        self.stall_s = 0.0
        self.refuse = False

    def app(self) -> Starlette:
        return Starlette(routes=[Route(STATE_PATH, self.state, methods=["PUT"])])

    async def state(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        await asyncio.sleep(self.stall_s)
        if self.refuse:
            return JSONResponse({"failure": {"Arn": "arn:task", "Reason": "TASK_NOT_VALID"}})
        self.puts.append(body)
        return JSONResponse({"protection": {"ProtectionEnabled": body["ProtectionEnabled"], "TaskArn": "arn:task"}})


@pytest.fixture
async def ecs_agent() -> AsyncIterator[tuple[EcsAgent, str]]:
    agent = EcsAgent()
    async with serving(agent.app(), lifespan="off") as url:
        yield agent, url


async def test_protection_is_set_on_the_first_call_renewed_while_calls_last_and_cleared_after_the_last(
        ecs_agent: tuple[EcsAgent, str]) -> None:
    agent, url = ecs_agent
    protection = TaskProtection(url, FAST)
    protection.start()
    try:
        protection.call_started()
        protection.call_started()  # a second call changes nothing
        await until(lambda: protection.protected)
        assert agent.puts[0] == {"ProtectionEnabled": True, "ExpiresInMinutes": 15}

        await until(lambda: len(agent.puts) >= 3)  # renewed while calls last
        assert all(put["ProtectionEnabled"] for put in agent.puts)

        protection.call_ended()
        await asyncio.sleep(0.4)
        assert protection.protected  # one call still going
        protection.call_ended()
        await until(lambda: not protection.protected)
        assert agent.puts[-1] == {"ProtectionEnabled": False}
        settled = len(agent.puts)
        await asyncio.sleep(0.5)
        assert len(agent.puts) == settled  # nothing to renew once cleared
    finally:
        await protection.aclose()


async def test_a_stalled_or_refusing_agent_never_holds_up_a_call_and_is_retried(
        ecs_agent: tuple[EcsAgent, str]) -> None:
    agent, url = ecs_agent
    agent.stall_s = 2.0
    protection = TaskProtection(url, FAST)
    protection.start()
    try:
        started = time.monotonic()
        protection.call_started()
        assert time.monotonic() - started < 0.05  # the call goes on at once
        await until(lambda: protection.failures >= 1)  # timed out after request_timeout_s
        assert not protection.protected

        agent.stall_s, agent.refuse = 0.0, True
        await until(lambda: protection.failures >= 3)
        agent.refuse = False
        await until(lambda: protection.protected)  # retried until the agent answered
    finally:
        await protection.aclose()


async def test_outside_ecs_it_does_nothing() -> None:
    protection = TaskProtection(None, FAST)
    protection.start()
    protection.call_started()
    protection.call_ended()
    await protection.aclose()
    assert not protection.protected and protection.failures == 0
