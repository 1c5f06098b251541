"""The bridge's HTTP and WebSocket surface: /media-stream for Twilio, /health and /calls for operators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse

from bridge.active_calls_metric import ActiveCallsMetric
from bridge.agent_cache import AgentCache
from bridge.call_session import WS_POLICY_VIOLATION, CallSession
from bridge.event_writer import EventWriter
from bridge.garbage_collection import GarbageCollection
from bridge.realtime_pool import RealtimePool
from bridge.settings import BridgeSettings
from bridge.shutdown import WS_TRY_AGAIN_LATER, Drain, StopSignal
from bridge.task_protection import TaskProtection
from bridge.tool_invoker import ToolInvoker
from bridge.twilio_calls import TwilioCalls
from voiceline.models import Agent, Call, CallEvent, connect
from voiceline.twilio_signature import is_valid, public_url

logger = Logger(service="voiceline-bridge")


class Bridge:
    """Process-wide state: settings, the clients every call shares, and the calls in progress."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        # Built before the start-up heap is frozen, so that no full collection scans them, and no caller waits on them.
        connect(Agent, Call, CallEvent)
        self.agents = AgentCache(settings.agent_cache_ttl_s)
        self.tool_invoker = ToolInvoker()
        self.event_writer = EventWriter()  # every call's events, in shared DynamoDB requests
        self.twilio_calls = TwilioCalls(settings.twilio_account_sid, settings.twilio_auth_token,
                                        settings.twilio_api_base_url, settings.twilio_rest_timeout_s)
        self.calls: set[CallSession] = set()
        self.drain = Drain(self.calls, settings.drain_timeout_s, settings.drain_wind_down_s)
        # Scale-in and deployments must wait for calls: protect the task while it has any, and publish
        # the count the service scales on.
        self.protection = TaskProtection(settings.ecs_agent_uri)
        self.active_calls_metric = ActiveCallsMetric(lambda: len(self.calls), settings.metric_interval_s,
                                                     service=settings.metric_service)
        self.realtime_pool = RealtimePool(settings)
        self.garbage_collection = GarbageCollection(settings.gc_interval_s)

    def start(self) -> None:
        self.protection.start()
        self.active_calls_metric.start()
        self.realtime_pool.start()
        self.garbage_collection.start()  # last: the heap it freezes holds everything started above

    async def stop_taking_calls(self) -> None:
        """SIGTERM: no new call will take a pre-warmed connection, so close them; then drain the calls."""
        await self.realtime_pool.aclose()
        await self.drain.run()

    async def aclose(self) -> None:
        await self.realtime_pool.aclose()
        await self.garbage_collection.aclose()
        await self.active_calls_metric.aclose()
        await self.protection.aclose()
        await self.twilio_calls.aclose()
        self.tool_invoker.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.bridge = Bridge(BridgeSettings.from_env())
    app.state.bridge.start()
    # SIGTERM drains the calls first; uvicorn stops (and closes connections) only after that.
    stop_signal = StopSignal(app.state.bridge.stop_taking_calls)
    stop_signal.install()
    try:
        yield
    finally:
        await stop_signal.uninstall()
        await app.state.bridge.aclose()
        del app.state.bridge  # a closed bridge is not to be found by the next lifespan's readers


app = FastAPI(title="Voiceline bridge", lifespan=lifespan)


@app.get("/health", response_model=None)
async def health() -> dict[str, Any] | JSONResponse:
    bridge: Bridge = app.state.bridge
    if bridge.drain.draining:  # the load balancer stops sending new streams here
        return JSONResponse({"status": "draining", "active_calls": len(bridge.calls)}, status_code=503)
    pool = bridge.realtime_pool
    # `missed` counts calls that found no pre-warmed connection since start: when it climbs, raise OPENAI_POOL_SIZE
    return {"status": "ok", "active_calls": len(bridge.calls),
            "realtime_pool": {"idle": pool.idle, "missed": pool.missed}}


@app.get("/calls")
async def active_calls() -> list[dict[str, Any]]:
    return [session.summary() for session in app.state.bridge.calls]


@app.websocket("/media-stream")
async def media_stream(websocket: WebSocket) -> None:
    """Twilio's media stream. The signature is checked before any call state exists."""
    bridge: Bridge = websocket.app.state.bridge
    headers = {name.lower(): value for name, value in websocket.headers.items()}
    url = public_url(headers, websocket.url.path, default_scheme=websocket.url.scheme, websocket=True)
    if not is_valid(bridge.settings.twilio_auth_token, url, {}, headers.get("x-twilio-signature")):
        logger.warning("media stream rejected: bad Twilio signature", url=url)
        await websocket.accept()
        await websocket.close(code=WS_POLICY_VIOLATION, reason="invalid Twilio signature")
        return
    await websocket.accept()
    if bridge.drain.draining:
        # Twilio does not retry: it runs the TwiML after <Connect>, which for ours ends the call.
        logger.warning("media stream refused: the bridge is shutting down")
        await websocket.close(code=WS_TRY_AGAIN_LATER, reason="bridge shutting down; try again later")
        return
    session = CallSession(websocket, bridge.settings, bridge.agents, bridge.tool_invoker, bridge.twilio_calls,
                          bridge.event_writer, bridge.realtime_pool)
    bridge.calls.add(session)  # no await since the drain check: the drain sees every call it must end
    bridge.protection.call_started()
    try:
        await session.run()
    finally:
        bridge.calls.discard(session)
        bridge.protection.call_ended()
        bridge.drain.call_ended()
