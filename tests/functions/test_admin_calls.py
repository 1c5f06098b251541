"""/api/calls through the local gateway over HTTP: history newest first with an opaque cursor, one call with its
events in order, and nothing of another tenant's."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.functions.admin_api import (
    START,
    AdminApi,
    admin_api_fixture,  # noqa: F401 (the admin_api fixture)
    seed_call,
    seed_calls,
)
from voiceline import calls
from voiceline.calls import CallOutcome, NewEvent, ToolOutcome


def every_page(client: httpx.Client, **params: Any) -> tuple[list[str], int]:
    """Follow next_cursor to the end: the SIDs in the order served, and how many pages it took."""
    sids: list[str] = []
    pages, cursor = 0, None
    while True:
        response = client.get("/api/calls", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        pages += 1
        body = response.json()
        sids += [call["call_sid"] for call in body["calls"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return sids, pages
        assert pages < 100, "the cursor never ran out"


def test_many_calls_come_newest_first_page_by_page_with_no_duplicates_or_gaps(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    front_desk = seed_calls("tenant-a", "agent-front-desk", 57)
    night_line = seed_calls("tenant-a", "agent-night-line", 9, first=START + timedelta(seconds=30), prefix="CB")
    seed_calls("tenant-b", "agent-other", 6)  # another tenant's, interleaved in time

    newest_first = [sid for _, sid in sorted(
        [(START + timedelta(minutes=n), sid) for n, sid in enumerate(front_desk)]
        + [(START + timedelta(seconds=30, minutes=n), sid) for n, sid in enumerate(night_line)], reverse=True)]

    served, pages = every_page(client, limit=10)
    assert served == newest_first
    assert pages == 7  # 66 calls, 10 a page

    served, _ = every_page(client, agent="agent-front-desk", limit=7)
    assert served == front_desk[::-1]


def test_a_page_lists_each_call_in_brief(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    seed_call("CA" + "1" * 32, "tenant-a", "agent-1", START, status="ended", end_reason="caller_hung_up",
              duration_s=42.5, ended_at=START + timedelta(seconds=42.5), twilio_status="completed")

    [call] = client.get("/api/calls").json()["calls"]

    assert call == {"call_sid": "CA" + "1" * 32, "agent_id": "agent-1", "direction": "inbound",
                    "from_number": "+15551234567", "to_number": "+15550100", "status": "ended",
                    "started_at": "2030-03-01T09:00:00Z", "ended_at": "2030-03-01T09:00:42.500000Z",
                    "duration_s": 42.5, "end_reason": "caller_hung_up", "twilio_status": "completed",
                    "answered_by": None, "cost_usd": None}


def test_a_time_range_selects_calls_started_within_it_inclusive(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    sids = seed_calls("tenant-a", "agent-1", 30)

    served, _ = every_page(client, limit=4, **{"from": "2030-03-01T09:10:00Z", "to": "2030-03-01T04:20:00-05:00"})
    assert served == sids[10:21][::-1]

    served, _ = every_page(client, agent="agent-1", **{"from": "2030-03-01T09:25:00"})  # naive means UTC
    assert served == sids[25:][::-1]

    served, _ = every_page(client, to="2030-03-01T09:02:00+00:00")
    assert served == sids[:3][::-1]


def _cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def test_a_tampered_or_foreign_cursor_is_refused_with_400(admin_api: AdminApi) -> None:
    alice, bob = admin_api.as_tenant("tenant-a"), admin_api.as_tenant("tenant-b")
    seed_calls("tenant-a", "agent-a", 5)
    seed_calls("tenant-b", "agent-b", 5)
    cursor = alice.get("/api/calls", params={"limit": 2}).json()["next_cursor"]
    agent_cursor = alice.get("/api/calls", params={"limit": 2, "agent": "agent-a"}).json()["next_cursor"]
    key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert set(key) == {"call_sid", "started_at", "tenant_id"}  # DynamoDB's LastEvaluatedKey of the tenant index

    tampered = [
        cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB"),
        "not base64 at all!",
        _cursor(["a", "list"]),
        _cursor({**key, "tenant_id": {"S": "tenant-b"}}),
        _cursor({**key, "extra": {"S": "x"}}),
        _cursor({**key, "started_at": {"S": "yesterday"}}),
        _cursor({**key, "call_sid": {"N": "1"}}),
        _cursor({"call_sid": key["call_sid"], "started_at": key["started_at"]}),
        agent_cursor,  # an agent query's cursor on the tenant's list
        "A" * 3000,
    ]
    for bad in tampered:
        response = alice.get("/api/calls", params={"cursor": bad})
        assert response.status_code in (400, 422), (bad, response.text)
        if len(bad) <= 2000:
            assert response.status_code == 400 and response.json()["detail"].startswith("invalid cursor"), bad

    # Alice's cursor is no key to Bob's calls or Bob's to hers.
    assert bob.get("/api/calls", params={"cursor": cursor}).status_code == 400
    assert alice.get("/api/calls", params={"cursor": cursor}).status_code == 200


def test_a_tenant_sees_only_its_own_calls(admin_api: AdminApi) -> None:
    alice, bob = admin_api.as_tenant("tenant-a"), admin_api.as_tenant("tenant-b")
    alices = seed_calls("tenant-a", "agent-a", 3)
    bob_agent = bob.post("/api/agents", json={"name": "Bob", "instructions": "Help.", "greeting": "Hi."}).json()
    bobs = seed_calls("tenant-b", bob_agent["agent_id"], 2)

    assert every_page(bob)[0] == bobs[::-1]
    assert bob.get(f"/api/calls/{alices[0]}").status_code == 404
    assert bob.get(f"/api/calls/{alices[0]}").json() == {"detail": "call not found"}
    assert bob.get("/api/calls", params={"agent": "agent-a"}).json() == {"calls": [], "next_cursor": None}
    response = alice.get("/api/calls", params={"agent": bob_agent["agent_id"]})
    assert (response.status_code, response.json()) == (404, {"detail": "agent not found"})
    assert alice.get(f"/api/calls/{bobs[0]}").status_code == 404
    assert alice.get(f"/api/calls/{alices[0]}").status_code == 200


def test_a_call_comes_with_its_metrics_and_its_events_in_order(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    sid = "CA" + "7" * 32
    seed_call(sid, "tenant-a", "agent-1", START)
    story = [
        NewEvent("transcript", 900, role="agent", text="Thanks for calling Bright Plumbing."),
        NewEvent("transcript", 4200, role="caller", text="How much is a tap repair?"),
        NewEvent("tool_call", 4700, data={"name": "get_pricing", "arguments": {"service": "tap repair"},
                                          "outcome": "ok", "duration_ms": 81.5}),
        NewEvent("transcript", 5600, role="agent", text="A tap repair is $95."),
        NewEvent("interruption", 6100, data={"item_id": "item_3", "audio_end_ms": 480}),
        NewEvent("error", 6500, data={"source": "openai", "message": "rate limited"}),
        NewEvent("transfer", 9000, data={"to": "+14155550199", "outcome": "updated"}),
    ]
    # The bridge writes in batches as the call goes; seq carries on from batch to batch.
    calls.append_events(sid, calls.append_events(sid, 0, story[:3]), story[3:])
    calls.finalise_call(sid, CallOutcome(
        end_reason="transferred", ended_at=START + timedelta(seconds=9), duration_s=9.0, greeting_latency_ms=640.0,
        setup_reads_ms=12.0, turn_latencies_ms=[700.0, 900.0, 1100.0], interruptions=1,
        usage={"input_tokens": 1200, "output_tokens": 300},
        tool_outcomes={"get_pricing": [ToolOutcome("ok", 81.5)]}))

    response = client.get(f"/api/calls/{sid}")

    assert response.status_code == 200, response.text
    call = response.json()
    assert (call["call_sid"], call["status"], call["end_reason"], call["duration_s"]) == (
        sid, "ended", "transferred", 9.0)
    assert (call["greeting_latency_ms"], call["setup_reads_ms"], call["turn_latency_p50_ms"], call["interruptions"],
            call["tool_calls"]) == (640.0, 12.0, 900.0, 1, 1)
    assert call["usage"] == {"input_tokens": 1200, "output_tokens": 300}
    assert call["tools"]["get_pricing"]["calls"] == 1
    assert "tenant_id" not in call
    assert [event["seq"] for event in call["events"]] == list(range(7))
    assert [(event["kind"], event["at_ms"], event["role"], event["text"]) for event in call["events"]] == [
        (event.kind, event.at_ms, event.role, event.text) for event in story]
    assert call["events"][2]["data"]["name"] == "get_pricing"
    assert call["events"][6]["data"] == {"to": "+14155550199", "outcome": "updated"}


@pytest.mark.parametrize(("params", "loc"), [
    ({"limit": 0}, ["query", "limit"]),
    ({"limit": 101}, ["query", "limit"]),
    ({"limit": "ten"}, ["query", "limit"]),
    ({"from": "last tuesday"}, ["query", "from"]),
    ({"from": "2030-03-02T00:00:00Z", "to": "2030-03-01T00:00:00Z"}, ["query", "to"]),
    ({"from": "9999-12-31T23:59:59-05:00"}, ["query", "from"]),
])
def test_bad_query_parameters_get_a_422_naming_them(admin_api: AdminApi, params: dict[str, Any],
                                                    loc: list[str]) -> None:
    response = admin_api.as_tenant("tenant-a").get("/api/calls", params=params)
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]


def test_an_unknown_call_is_not_found(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    for sid in ("CA" + "0" * 32, "not a sid", "x" * 100):
        assert client.get(f"/api/calls/{sid}").status_code == 404


def test_started_at_is_utc_whatever_the_offset_given(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    seed_call("CA" + "2" * 32, "tenant-a", "agent-1", datetime(2030, 3, 1, 23, 30, tzinfo=UTC))
    tokyo_morning = "2030-03-02T08:30:00+09:00"  # the same instant
    assert [c["call_sid"] for c in client.get("/api/calls", params={"from": tokyo_morning,
                                                                    "to": tokyo_morning}).json()["calls"]] == [
        "CA" + "2" * 32]
