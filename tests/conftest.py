"""Shared fixtures: the local environment, moto tables, events, a Lambda context and a Twilio signer."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local.environment import DEFAULTS  # noqa: E402

# Tests never reach AWS: the local defaults (fake credentials, local table names) come first.
for _name, _value in DEFAULTS.items():
    os.environ.setdefault(_name, _value)
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)  # unit tests use moto in-process; the stack sets it

import botocore.loaders  # noqa: E402
import botocore.session  # noqa: E402
import pynamodb.connection.base  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

_SERVICE_MODELS = botocore.loaders.create_loader()


def _session_with_cached_service_models() -> botocore.session.Session:
    """A fresh botocore session that reads DynamoDB's service description once per test run, not per client.

    Each test gives every model a fresh client inside its moto mock; without the shared loader each
    of those re-reads and re-parses the service JSON, about 2 s of setup per test.
    """
    session = botocore.session.get_session()
    session.register_component("data_loader", _SERVICE_MODELS)
    return session


pynamodb.connection.base.get_session = _session_with_cached_service_models  # type: ignore[assignment]
from twilio.request_validator import RequestValidator  # noqa: E402

EVENTS_DIR = ROOT / "events"


@pytest.fixture
def dynamodb() -> Iterator[None]:
    """Moto-backed DynamoDB with every table built from its PynamoDB model."""
    from local.dynamo import create_tables
    from voiceline.models import ALL_MODELS

    with mock_aws():
        for model in ALL_MODELS:
            model._connection = None  # a fresh botocore client inside the mock
        create_tables()
        yield
    for model in ALL_MODELS:
        model._connection = None


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())


@dataclass
class LambdaContext:
    function_name: str = "voiceline-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:voiceline-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


class TwilioSigner:
    """Signs requests exactly as Twilio does, with the local auth token."""

    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token)

    def sign(self, url: str, params: dict[str, str] | None = None) -> str:
        return self._validator.compute_signature(url, params or {})


@pytest.fixture
def twilio_signer() -> TwilioSigner:
    return TwilioSigner(os.environ["TWILIO_AUTH_TOKEN"])
