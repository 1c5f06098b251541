"""The bridge's HTTP and WebSocket surface: /media-stream for Twilio, /health and /calls for operators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import FastAPI, WebSocket

from bridge.agent_cache import AgentCache
from bridge.call_session import WS_POLICY_VIOLATION, CallSession
from bridge.settings import BridgeSettings
from bridge.tool_invoker import ToolInvoker
from bridge.twilio_calls import TwilioCalls
from voiceline.twilio_signature import is_valid, public_url

logger = Logger(service="voiceline-bridge")


class Bridge:
    """Process-wide state: settings, the clients every call shares, and the calls in progress."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.agents = AgentCache(settings.agent_cache_ttl_s)
        self.tool_invoker = ToolInvoker()
        self.twilio_calls = TwilioCalls(settings.twilio_account_sid, settings.twilio_auth_token,
                                        settings.twilio_api_base_url, settings.twilio_rest_timeout_s)
        self.calls: set[CallSession] = set()

    async def aclose(self) -> None:
        await self.twilio_calls.aclose()
        self.tool_invoker.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.bridge = Bridge(BridgeSettings.from_env())
    try:
        yield
    finally:
        await app.state.bridge.aclose()


app = FastAPI(title="Voiceline bridge", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, Any]:
    return {"status": "ok", "active_calls": len(app.state.bridge.calls)}


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
    session = CallSession(websocket, bridge.settings, bridge.agents, bridge.tool_invoker, bridge.twilio_calls)
    bridge.calls.add(session)
    try:
        await session.run()
    finally:
        bridge.calls.discard(session)
