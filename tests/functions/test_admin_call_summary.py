"""The admin API's side of post-call summaries: an agent's summary_schema, and the summary in a call's detail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.functions.admin_api import (
    AdminApi,
    admin_api_fixture,  # noqa: F401 (the admin_api fixture)
    create_agent,
    seed_call,
)
from voiceline.models import Agent
from voiceline.summary_schema import MAX_CHARS

FIELDS: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["service", "urgent"],
                          "properties": {"service": {"type": ["string", "null"]}, "urgent": {"type": "boolean"}}}


def test_an_agent_keeps_the_summary_schema_it_is_given_and_a_patch_can_clear_it(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")

    agent = create_agent(client, summary_schema=FIELDS)
    assert agent["summary_schema"] == FIELDS
    assert Agent.get(agent["agent_id"]).summary_schema == FIELDS

    cleared = client.patch(f"/api/agents/{agent['agent_id']}", json={"version": 1, "summary_schema": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["summary_schema"] is None and Agent.get(agent["agent_id"]).summary_schema is None


def test_an_agent_without_a_summary_schema_reads_back_with_null(admin_api: AdminApi) -> None:
    assert create_agent(admin_api.as_tenant("tenant-a"))["summary_schema"] is None


def test_a_summary_schema_that_is_not_valid_or_too_big_gets_a_422_naming_it(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    agent = create_agent(client)
    cases = [
        ("not a schema", "Input should be a valid dictionary"),
        ({"type": "object", "properties": {"service": {"type": "text"}}}, "not a valid JSON Schema"),
        ({**FIELDS, "required": ["service"]}, "every property must be required"),
        ({**FIELDS, "description": "x" * MAX_CHARS}, f"at most {MAX_CHARS}"),
    ]
    for schema, message in cases:
        response = client.patch(f"/api/agents/{agent['agent_id']}", json={"version": 1, "summary_schema": schema})

        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert tuple(error["loc"]) == ("body", "summary_schema")
        assert message in error["msg"]
    assert Agent.get(agent["agent_id"]).version == 1  # nothing written


def test_a_calls_detail_shows_its_summary_once_written(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    agent = create_agent(client)
    started = datetime(2030, 3, 1, 9, tzinfo=UTC)
    summary = {"summary": "The caller asked a price. The agent answered.", "intent": "price of a tap repair",
               "outcome": "answered", "fields": {"service": "tap repair", "urgent": False},
               "model": "scripted-stand-in", "source": "scripted stand-in", "created_at": "2030-03-01T09:05:00+00:00"}
    seed_call("CA1", "tenant-a", agent["agent_id"], started)
    seed_call("CA2", "tenant-a", agent["agent_id"], started, summary=summary)

    assert client.get("/api/calls/CA1").json()["summary"] is None
    assert client.get("/api/calls/CA2").json()["summary"] == summary
