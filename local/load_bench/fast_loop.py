"""The load benchmark's processes run on uvloop, as uvicorn runs the bridge: a slow harness would blur figures."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_fast(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
