"""The load benchmark's processes run on uvloop, as uvicorn runs the bridge, with the start-up heap frozen as the
bridge freezes its own: a slow harness or a long garbage collection in it would blur the bridge's figures."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any


def run_fast(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, on uvloop when it is installed, after moving what is loaded so far out of the collector's sight."""
    gc.freeze()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
