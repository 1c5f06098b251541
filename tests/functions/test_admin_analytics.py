"""/api/analytics through the local gateway over HTTP: series with zeros, totals, percentiles, validation, read cost;
and the cost on /api/calls."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.client import BaseClient

from tests.functions.admin_api import (
    START,
    AdminApi,
    admin_api_fixture,  # noqa: F401 (the admin_api fixture)
    seed_call,
)
from voiceline import rollups
from voiceline.models import Call

COST = {"total": 0.0123456, "openai": {"total": 0.01}, "twilio": {"total": 0.002}, "aws": {"total": 0.0003456}}


def finished_call(sid: str, tenant: str, agent: str, started: datetime, **attributes: Any) -> None:
    """A finished call's record, rolled up as the stream Lambda would."""
    defaults: dict[str, Any] = {"status": "ended", "end_reason": "agent_hung_up", "duration_s": 90,
                                "interruptions": 1, "turn_latencies_ms": [450, 820], "greeting_latency_ms": 700,
                                "cost": COST, "tools": {"book_appointment": {"calls": 1, "declined": 0, "failed": 0}}}
    seed_call(sid, tenant, agent, started, **{**defaults, **attributes})
    assert rollups.apply_group([rollups.EndedCall(f"seq-{sid}", Call.get(sid))])


def analytics(client: Any, **params: Any) -> Any:
    return client.get("/api/analytics", params=params)


def test_a_day_series_has_every_day_with_zeros_and_totals_over_the_range(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    finished_call("CA" + "a" * 32, "tenant-a", "agent-1", START)
    finished_call("CA" + "b" * 32, "tenant-a", "agent-2", START + timedelta(days=2), end_reason="transferred",
                  turn_latencies_ms=[2_600], tools={"get_pricing": {"calls": 2, "declined": 0, "failed": 1}})

    response = analytics(client, **{"from": "2030-03-01", "to": "2030-03-04", "granularity": "day"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["granularity"], body["agent_id"]) == ("day", None)
    assert [b["bucket"] for b in body["series"]] == ["2030-03-01", "2030-03-02", "2030-03-03"]
    assert [b["calls"] for b in body["series"]] == [1, 0, 1]
    assert body["series"][1]["answer_latency_ms"] == {"p50": None, "p95": None}
    totals = body["totals"]
    assert (totals["calls"], totals["minutes"], totals["inbound"], totals["outbound"]) == (2, 3.0, 2, 0)
    assert totals["end_reasons"] == {"agent_hung_up": 1, "transferred": 1}
    assert (totals["transfers"], totals["interruptions"], totals["bookings"]) == (1, 2, 1)
    assert totals["tools"] == {"book_appointment": {"calls": 1, "errors": 0, "declined": 0},
                               "get_pricing": {"calls": 2, "errors": 1, "declined": 0}}
    assert totals["cost_usd"] == pytest.approx(2 * 0.012346, abs=1e-6)
    # Latencies 450, 820, 2600: p50 is 820 (bucket ≤ 900), p95 is 2600 (bucket ≤ 3000).
    assert totals["answer_latency_ms"] == {"p50": 900, "p95": 3000}
    assert totals["greeting_latency_ms"] == {"p50": 700, "p95": 700}


def test_an_hour_series_and_one_agents_figures(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    finished_call("CA" + "c" * 32, "tenant-a", "agent-1", START + timedelta(minutes=5))
    finished_call("CA" + "d" * 32, "tenant-a", "agent-2", START + timedelta(minutes=65))

    body = analytics(client, **{"from": START.isoformat(), "to": (START + timedelta(hours=3)).isoformat(),
                                "granularity": "hour", "agent": "agent-2"}).json()

    assert [(b["bucket"], b["calls"]) for b in body["series"]] == [
        ("2030-03-01T09", 0), ("2030-03-01T10", 1), ("2030-03-01T11", 0)]
    assert body["agent_id"] == "agent-2" and body["totals"]["calls"] == 1


def test_a_tenant_never_sees_another_tenants_figures(admin_api: AdminApi) -> None:
    finished_call("CA" + "e" * 32, "tenant-a", "agent-1", START)
    other = admin_api.as_tenant("tenant-b")

    for agent in (None, "agent-1"):
        body = analytics(other, **{"from": "2030-03-01", "to": "2030-03-02"}, **({"agent": agent} if agent else {}))
        assert body.json()["totals"]["calls"] == 0


@pytest.mark.parametrize("params, problem", [
    ({"from": "2030-03-02", "to": "2030-03-02"}, "must be after from"),
    ({"from": "2030-03-02", "to": "2030-03-01"}, "must be after from"),
    ({"from": "2030-01-01", "to": "2031-02-06"}, "more than 400 days"),
    ({"from": "2030-01-01", "to": "2030-02-02", "granularity": "hour"}, "more than 31 days"),
    ({"from": "2030-01-01", "to": "2030-01-02", "granularity": "week"}, "'hour' or 'day'"),
    ({"from": "2030-01-01", "to": "2030-01-02", "agent": "no such/agent"}, "not an agent id"),
    ({"from": "yesterday", "to": "2030-01-02"}, "datetime"),
    ({"to": "2030-01-02"}, "Field required"),
])
def test_a_bad_query_is_a_422_naming_the_problem(admin_api: AdminApi, params: dict[str, str], problem: str) -> None:
    response = analytics(admin_api.as_tenant("tenant-a"), **params)
    assert response.status_code == 422
    assert problem in response.text


def test_a_request_without_a_key_is_refused(admin_api: AdminApi) -> None:
    assert analytics(admin_api.client(), **{"from": "2030-03-01", "to": "2030-03-02"}).status_code == 401


def test_thirty_days_read_only_the_rollups_with_one_query(admin_api: AdminApi,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client = admin_api.as_tenant("tenant-a")
    for day in range(30):
        finished_call(f"CA{day:032d}", "tenant-a", "agent-1", START + timedelta(days=day))
    operations: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(client_: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        operations.append(f"{operation} {params.get('TableName')}")
        return make_api_call(client_, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    body = analytics(client, **{"from": "2030-03-01", "to": "2030-03-31"}).json()
    monkeypatch.undo()

    assert body["totals"]["calls"] == 30 and len(body["series"]) == 30
    assert [op for op in operations if "api-keys" not in op] == ["Query voiceline-rollups"]


def test_calls_show_their_cost(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    finished_call("CA" + "f" * 32, "tenant-a", "agent-1", START)

    [listed] = client.get("/api/calls").json()["calls"]
    detail = client.get(f"/api/calls/CA{'f' * 32}").json()

    assert listed["cost_usd"] == COST["total"]
    assert detail["cost"] == COST and detail["cost_usd"] == COST["total"]
