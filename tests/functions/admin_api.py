"""The admin API over real HTTP: the local gateway serving template.yaml's AdminFunction, against moto in-process.

Not a test module: the test_admin_* modules share it. A tenant is a key: `api.as_tenant("tenant-a")` issues
one and returns an httpx client that sends it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.asgi_server import ThreadedServer
from local.gateway import DEFAULT_TEMPLATE, build_app
from voiceline import api_keys, calls, tenants
from voiceline.calls import NewEvent
from voiceline.models import Call

AGENT_BODY: dict[str, Any] = {
    "name": "Ava",
    "business_name": "Bright Plumbing",
    "language": "en-US",
    "timezone": "America/New_York",
    "instructions": "You answer for {business_name}. It is {local_time}. The caller is {caller_number}.",
    "greeting": "Thanks for calling {business_name}, how can I help?",
    "voice": "marin",
    "speed": 1.1,
    "model": "gpt-realtime",
    "turn_detection": {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 300, "silence_duration_ms": 500},
    "noise_reduction": "near_field",
    "tools": ["get_pricing", "end_call", "transfer_call"],
    "transfer_number": "+14155550199",
    "max_duration_s": 300,
    "silence_timeout_s": 20,
}


class AdminApi:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._clients: list[httpx.Client] = []

    def client(self, headers: dict[str, Any] | None = None) -> httpx.Client:
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=10)
        self._clients.append(client)
        return client

    def as_tenant(self, tenant_id: str) -> httpx.Client:
        tenants.create_tenant(tenant_id, tenant_id)
        key = api_keys.issue_key(tenant_id, "tests").key
        return self.client({"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture(name="admin_api")
def admin_api_fixture(dynamodb: None) -> Iterator[AdminApi]:
    """Import this into a test module for its `admin_api` fixture."""
    with ThreadedServer(build_app(DEFAULT_TEMPLATE)) as server:
        api = AdminApi(server.url)
        try:
            yield api
        finally:
            api.close()


def create_agent(client: httpx.Client, **changes: Any) -> dict[str, Any]:
    response = client.post("/api/agents", json={**AGENT_BODY, **changes})
    assert response.status_code == 201, response.text
    return response.json()


START = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


def seed_call(call_sid: str, tenant_id: str, agent_id: str, started_at: datetime,
              events: list[NewEvent] | None = None, **attributes: Any) -> None:
    """A call as the webhook and the bridge leave it: the record, its start time, its events."""
    calls.create_call(call_sid, tenant_id, agent_id, "+15551234567", "+15550100")
    Call(call_sid).update(actions=[Call.started_at.set(started_at),
                                   *(getattr(Call, name).set(value) for name, value in attributes.items())])
    if events:
        calls.append_events(call_sid, 0, events)


def seed_calls(tenant_id: str, agent_id: str, count: int, first: datetime = START, prefix: str = "CA") -> list[str]:
    """`count` calls a minute apart from `first`; their SIDs, oldest first."""
    sids = [f"{prefix}{tenant_id[-1]}{number:031d}" for number in range(count)]
    for number, sid in enumerate(sids):
        seed_call(sid, tenant_id, agent_id, first + timedelta(minutes=number))
    return sids
