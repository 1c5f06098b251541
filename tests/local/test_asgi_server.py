"""`serving`: the URL comes once the app's start-up has run, and a failed start-up is an error, not a wait."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette

from local.asgi_server import STARTUP_TIMEOUT_S, serving


async def test_the_url_comes_after_the_lifespan_has_started() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.made_at_startup = True
        yield

    app = Starlette(lifespan=lifespan)
    async with serving(app, lifespan="on"):
        assert app.state.made_at_startup


async def test_a_start_up_that_fails_is_raised_at_once() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no config")
        yield

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start"):
        async with serving(Starlette(lifespan=lifespan), lifespan="on"):
            pass
    assert time.monotonic() - started < STARTUP_TIMEOUT_S / 2
