"""The admin API: a FastAPI app under /api, served in Lambda through Mangum and locally by the gateway.

Each router is one resource; every route but the docs and the dashboard's page and assets needs a tenant's
API key (admin_auth).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import agents_routes
import analytics_routes
import calls_routes
import dashboard_routes
import numbers_routes
import outbound_routes
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI(
    title="Voiceline admin API",
    summary="Configure agents, phone numbers and outbound calls, and read call history.",
    version="1.0.0",
    docs_url="/api/docs",
    redoc_url=None,
    openapi_url="/api/openapi.json",
)
app.include_router(agents_routes.router)
app.include_router(analytics_routes.router)
app.include_router(calls_routes.router)
app.include_router(dashboard_routes.router)
app.include_router(numbers_routes.router)
app.include_router(outbound_routes.router)

_thread = threading.local()


def _use_thread_loop() -> None:
    """Mangum runs the app on the calling thread's event loop. Lambda has one thread; the local gateway calls
    from a pool of worker threads, so each gets a loop of its own on first use."""
    if getattr(_thread, "loop", None) is None:
        _thread.loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_thread.loop)


_use_thread_loop()  # Mangum looks for a loop as it is built
_mangum = Mangum(app, lifespan="off")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _use_thread_loop()
    return _mangum(event, context)
