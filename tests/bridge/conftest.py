"""Fixtures the in-process bridge tests share."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from local.asgi_server import serving
from local.twilio_rest import TwilioRestStandIn
from tests.bridge.faulty_dynamodb import FaultyDynamoDB, faulty_dynamodb


@pytest.fixture
async def twilio_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """Twilio's REST API stand-in, where the bridge sends hang-ups and transfers."""
    stand_in = TwilioRestStandIn(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
    async with serving(stand_in.app(), lifespan="off") as url:
        monkeypatch.setenv("TWILIO_API_BASE_URL", url)
        yield url


@pytest.fixture
def dynamodb_faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyDynamoDB]:
    """DynamoDB (moto's server) behind a proxy that throttles or holds the requests a test names."""
    with faulty_dynamodb(monkeypatch) as faults:
        yield faults
