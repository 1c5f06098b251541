"""The local stack, started once for the system tests and driven over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.call_records import CallRecords
from local.stack import LocalStack, StackPorts


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(ports=StackPorts.free(), log_dir=tmp_path_factory.mktemp("stack-logs")) as running:
        yield running


@pytest.fixture(scope="session")
def records(stack: LocalStack) -> CallRecords:
    return CallRecords(stack.dynamodb_url)


class ModelSessions:
    """The scripted model's own account of every Realtime session opened on it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def all(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base_url}/sessions", timeout=5).json()

    def opened_since(self, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = {session["id"] for session in before}
        return [session for session in self.all() if session["id"] not in known]


@pytest.fixture(scope="session")
def model_sessions(stack: LocalStack) -> ModelSessions:
    return ModelSessions(stack.model_url)


@pytest.fixture
def wav_dir(tmp_path: Path) -> Path:
    return tmp_path
