"""Greeting latency with and without pre-warmed OpenAI connections: Twilio `start` → first agent audio.

Sequential calls go through the in-process bridge (uvicorn on 127.0.0.1) to the scripted model,
with DynamoDB as moto in-process, once per pool size. On loopback a connect costs about a
millisecond, so each is also run with the scripted model holding every handshake for
`SIMULATED_CONNECT_S`, standing in for the network round trips and TLS to OpenAI.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import time
from typing import Any

from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect

from local.environment import DEFAULTS, applied
from local.scripted_model import ScriptedModelServer, load_script
from local.scripted_model.faults import FaultPlan
from local.stack import DEMO_CONVERSATION

CALLS = 10
POOL_SIZES = (0, 2)
SIMULATED_CONNECT_S = 0.15
CALL_TIMEOUT_S = 10
TENANT, AGENT = "tenant-bench", "agent-bench"


def greeting_latencies(calls: int = CALLS) -> dict[tuple[int, float], list[float]]:
    """Milliseconds from `start` to the first agent audio, per (pool size, simulated connect seconds)."""
    from moto import mock_aws

    with _bench_environment(), mock_aws():
        from local.dynamo import create_tables
        from voiceline.models import ALL_MODELS, Agent

        for model in ALL_MODELS:
            model._connection = None  # a fresh client inside the mock
        create_tables()
        Agent(AGENT, tenant_id=TENANT, name="Ava", business_name="Acme", instructions="Help {caller_number}.",
              greeting="Hello from {business_name}.", max_duration_s=60, silence_timeout_s=60).save()
        # The bridge prints its active-calls metric (EMF) to stdout at start; the bench's table is the output.
        with contextlib.redirect_stdout(io.StringIO()):
            return {(pool_size, delay): asyncio.run(_calls(pool_size, delay, calls))
                    for delay in (0.0, SIMULATED_CONNECT_S) for pool_size in POOL_SIZES}


def _bench_environment() -> contextlib.AbstractContextManager[None]:
    return applied({**DEFAULTS, "OPENAI_API_KEY": "bench-key", "POWERTOOLS_LOG_LEVEL": "ERROR",
                    "ACTIVE_CALLS_METRIC_INTERVAL_S": "3600"},
                   removed=("AWS_ENDPOINT_URL_DYNAMODB",))  # moto in-process, not a server


async def _calls(pool_size: int, connect_delay_s: float, calls: int) -> list[float]:
    from bridge.app import app
    from local.asgi_server import serving

    plan = FaultPlan()
    plan.handshake_delay_s = connect_delay_s
    os.environ["OPENAI_POOL_SIZE"] = str(pool_size)
    async with ScriptedModelServer(load_script(DEMO_CONVERSATION), faults=plan) as model:
        os.environ["OPENAI_REALTIME_URL"] = model.url
        async with serving(app, lifespan="on") as base_url:
            url = base_url.replace("http://", "ws://") + "/media-stream"
            latencies = []
            for number in range(calls + 1):  # the first call warms the bridge's code paths up: not counted
                async with asyncio.timeout(CALL_TIMEOUT_S):
                    while not _pool_ready(app, pool_size):  # as on a bridge between calls
                        await asyncio.sleep(0.005)
                    call_sid = f"CA{pool_size}{int(connect_delay_s * 1000):04d}{number:026d}"
                    latencies.append(await _greeting_ms(url, call_sid))
    return latencies[1:]


def _pool_ready(app: Any, pool_size: int) -> bool:
    bridge = getattr(app.state, "bridge", None)  # set once the app's lifespan has started
    return bridge is not None and bridge.realtime_pool.idle >= pool_size


async def _greeting_ms(url: str, call_sid: str) -> float:
    """One call: `start`, wait for the first agent audio, hang up."""
    from voiceline import agents, calls, stream_token
    from voiceline.models import Agent

    call = await asyncio.to_thread(calls.create_call, call_sid, TENANT, AGENT, "+15551230000", "+15550100")
    agent = await asyncio.to_thread(Agent.get, AGENT, consistent_read=True)
    parameters = stream_token.stream_parameters(os.environ["STREAM_TOKEN_KEY"].encode(), call_sid, AGENT, TENANT,
                                                agents.call_facts(agent, call))  # as the voice webhook does
    signature = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"]).compute_signature(url, {})
    async with connect(url, additional_headers={"X-Twilio-Signature": signature}) as socket:
        started = time.perf_counter()
        await socket.send(json.dumps({"event": "start", "start": {
            "streamSid": "MZ1", "callSid": call_sid, "accountSid": "AC1",
            "customParameters": parameters}}))
        async for raw in socket:
            if json.loads(raw)["event"] == "media":
                break
        elapsed_ms = (time.perf_counter() - started) * 1000
        await socket.send(json.dumps({"event": "stop", "stop": {"callSid": call_sid}}))
        async for _ in socket:  # until the bridge has ended the call and closed the stream
            pass
    return elapsed_ms
