"""One running bridge for a whole property-based test, with a healthy call beside the fuzzed ones.

Not a test module. Hypothesis runs its examples synchronously, so the bridge, the model and every
socket live on an event loop of their own thread, and each example runs its coroutine there. The
healthy call sends caller audio for as long as the fuzzing lasts; at the end, every frame it sent
must have reached the model.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
import pytest
from moto import mock_aws

from local.dynamo import create_tables
from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, health_url, running_bridge
from tests.conftest import TwilioSigner
from voiceline import calls, stream_token
from voiceline.models import ALL_MODELS, Agent

T = TypeVar("T")
FRAME_BYTES = 160  # one 20 ms μ-law frame
# An end that says why; `bridge_error` (a handler that escaped) or no reason at all would be a bug.
CLEAR_END_REASONS = frozenset({"caller_hung_up", "twilio_disconnected", "twilio_frame_too_large", "no_start_frame",
                               "invalid_stream_token", "openai_disconnected", "silence_timeout", "max_duration"})


class FuzzWorld:
    def __init__(self, loop: asyncio.AbstractEventLoop, media_url: str, signer: TwilioSigner) -> None:
        self.loop = loop
        self.media_url = media_url
        self.health_url = health_url(media_url)
        self.signer = signer
        self.healthy: TwilioLeg | None = None
        self._healthy_listening: asyncio.Task[int | None] | None = None
        self._sids = itertools.count(1)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def new_call(self) -> str:
        call_sid = f"CAfuzz{next(self._sids):06d}"
        calls.create_call(call_sid, TENANT, AGENT, "+15551230000", "+15550100")
        return call_sid

    def start_frame(self, call_sid: str) -> str:
        token = stream_token.issue(os.environ["STREAM_TOKEN_KEY"].encode(), call_sid, AGENT, TENANT)
        return json.dumps({"event": "start", "streamSid": "MZfuzz", "start": {
            "streamSid": "MZfuzz", "callSid": call_sid, "accountSid": "AC1",
            "customParameters": {"callSid": call_sid, "agentId": AGENT, "streamToken": token}}})

    def healthy_and_serving(self) -> None:
        """The property every example ends on: the bridge answers, and the healthy call is still on."""
        assert httpx.get(self.health_url, timeout=5).status_code == 200
        assert self.healthy is not None and self.healthy.socket.close_code is None

    @asynccontextmanager
    async def healthy_call(self) -> AsyncIterator[TwilioLeg]:
        """A call sending caller audio every 20 ms, listening and echoing marks, until `end_healthy_call`."""
        async with TwilioLeg.open(self.media_url, self.signer, self.new_call()) as leg:
            self._healthy_listening = asyncio.create_task(leg.run_until_closed(timeout_s=600))
            await asyncio.wait_for(leg.first_media.wait(), 10)
            yield leg
            if leg.socket.close_code is None:
                await self.end_healthy_call()

    async def end_healthy_call(self) -> None:
        """Hang the healthy call up, and wait until the bridge has closed it."""
        assert self.healthy is not None
        await self.healthy.hang_up()
        assert self._healthy_listening is not None
        await self._healthy_listening

    def end_reason(self, call_sid: str) -> str | None:
        for _ in range(250):
            call = calls.get_call(call_sid)
            if call is not None and call.end_reason:
                return call.end_reason
            self.run(asyncio.sleep(0.02))
        return None


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def fuzz_world(model: AbstractAsyncContextManager[str]) -> Iterator[FuzzWorld]:
    """The bridge (talking to the model whose URL `model` yields), moto, and a healthy call in progress."""
    thread = _LoopThread()
    stack = AsyncExitStack()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("STREAM_START_TIMEOUT_S", "1")
    run = lambda coroutine: asyncio.run_coroutine_threadsafe(coroutine, thread.loop).result(30)  # noqa: E731
    try:
        with mock_aws():
            for table in ALL_MODELS:
                table._connection = None
            create_tables()
            Agent(AGENT, tenant_id=TENANT, name="Ava", business_name="Acme", instructions="Help", greeting="Hello",
                  max_duration_s=600, silence_timeout_s=600).save()
            model_url = run(stack.enter_async_context(model))
            media_url = run(stack.enter_async_context(running_bridge(model_url, monkeypatch)))
            world = FuzzWorld(thread.loop, media_url, TwilioSigner(os.environ["TWILIO_AUTH_TOKEN"]))
            world.healthy = run(stack.enter_async_context(world.healthy_call()))
            try:
                yield world
            finally:
                run(stack.aclose())
            assert world.healthy is not None and world.end_reason(world.healthy.call_sid) == "caller_hung_up"
    finally:
        monkeypatch.undo()
        thread.close()
        for table in ALL_MODELS:
            table._connection = None
