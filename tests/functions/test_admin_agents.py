"""/api/agents through the local gateway over HTTP: CRUD, field-level 422s, versioned updates, preview, isolation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.functions.admin_api import (
    AGENT_BODY,
    AdminApi,
    admin_api_fixture,  # noqa: F401 (the admin_api fixture)
    create_agent,
)
from voiceline import agents
from voiceline.models import Agent, PhoneNumber


def test_an_agent_is_created_read_listed_replaced_patched_and_deleted(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")

    created = client.post("/api/agents", json=AGENT_BODY)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert created.headers["location"] == f"/api/agents/{agent['agent_id']}"
    assert agent["version"] == 1 and agent["updated_at"]
    assert {name: agent[name] for name in AGENT_BODY} == AGENT_BODY
    assert agent["enabled"] is True and agent["answering_machine"] == "off"  # defaults filled in
    url = f"/api/agents/{agent['agent_id']}"

    assert client.get(url).json() == agent
    assert [listed["agent_id"] for listed in client.get("/api/agents").json()["agents"]] == [agent["agent_id"]]

    replaced = client.put(url, json={**AGENT_BODY, "name": "Bea", "voice": "cedar", "tools": [], "version": 1})
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["name"], replaced.json()["voice"], replaced.json()["version"]) == ("Bea", "cedar", 2)
    assert replaced.json()["updated_at"] > agent["updated_at"]

    patched = client.patch(url, json={"version": 2, "speed": 0.9, "turn_detection": {"type": "semantic_vad",
                                                                                      "eagerness": "low"},
                                      "noise_reduction": None})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["speed"], body["turn_detection"], body["noise_reduction"], body["version"]) == (
        0.9, {"type": "semantic_vad", "eagerness": "low"}, None, 3)
    assert body["name"] == "Bea"  # untouched by the patch
    stored = Agent.get(agent["agent_id"])
    assert (stored.version, stored.speed, stored.turn_detection["eagerness"]) == (3, 0.9, "low")

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    assert client.get("/api/agents").json() == {"agents": []}


# (field, bad value, where the error is reported, a word of its message)
INVALID_FIELDS = [
    ("name", "", ("name",), "at least 1"),
    ("model", "gpt-4o", ("model",), "gpt-realtime"),
    ("retention_ratio", 1.5, ("retention_ratio",), "less than or equal to 1"),
    ("retention_ratio", 0.0, ("retention_ratio",), "greater than or equal to 0.1"),
    ("stable_instructions", "yes", ("stable_instructions",), "boolean"),
    ("language", "klingon", ("language",), "ISO 639-1"),
    ("language", "xx-US", ("language",), "ISO 639-1"),
    ("timezone", "Mars/Olympus_Mons", ("timezone",), "IANA"),
    ("instructions", "Help {caller_number} with {favourite_colour}.", ("instructions",),
     "unknown variable {favourite_colour}"),
    ("instructions", "Help {caller_number", ("instructions",), "braces"),
    ("instructions", "Help {0}", ("instructions",), "not a variable name"),
    ("greeting", "Hello {customer_nam}", ("greeting",), "unknown variable {customer_nam}"),
    ("template_variables", ["Order-Id"], ("template_variables", 0), "lower-case"),
    ("template_variables", ["caller_number"], ("template_variables",), "every call fills in"),
    ("voice", "nova", ("voice",), "'marin'"),
    ("speed", 1.6, ("speed",), "1.5"),
    ("speed", 0.2, ("speed",), "0.25"),
    ("model", "gpt-4o", ("model",), "'gpt-realtime-mini'"),
    ("turn_detection", {"type": "server_vad", "threshold": 1.2}, ("turn_detection", "server_vad", "threshold"), "1"),
    ("turn_detection", {"type": "server_vad", "silence_duration_ms": -5},
     ("turn_detection", "server_vad", "silence_duration_ms"), "100"),
    ("turn_detection", {"type": "server_vad", "prefix_padding_ms": 60_000},
     ("turn_detection", "server_vad", "prefix_padding_ms"), "2000"),
    ("turn_detection", {"type": "semantic_vad", "eagerness": "eager"}, ("turn_detection", "semantic_vad", "eagerness"),
     "'auto'"),
    ("turn_detection", {"type": "push_to_talk"}, ("turn_detection",), "server_vad"),
    ("noise_reduction", "studio", ("noise_reduction",), "'far_field'"),
    ("transcription_language", "english", ("transcription_language",), "at most 2"),
    ("transcription_language", "qq", ("transcription_language",), "ISO 639-1"),
    ("tools", ["get_pricing", "teleport"], ("tools", 1), "'book_appointment'"),
    ("tools", ["end_call", "end_call"], ("tools",), "more than once"),
    ("transfer_number", "555-0199", ("transfer_number",), "E.164"),
    ("max_duration_s", 0, ("max_duration_s",), "greater than or equal"),
    ("max_duration_s", 86_400, ("max_duration_s",), "less than or equal"),
    ("silence_timeout_s", 1, ("silence_timeout_s",), "greater than or equal"),
    ("enabled", "maybe", ("enabled",), "boolean"),
    ("wait_for_callee", 1, ("wait_for_callee",), "boolean"),
    ("answering_machine", "voicemail", ("answering_machine",), "'leave_message'"),
    ("voicemail_message", "", ("voicemail_message",), "at least 1"),
    ("favourite_colour", "blue", ("favourite_colour",), "not permitted"),
]


@pytest.mark.parametrize(("field", "value", "loc", "message"), INVALID_FIELDS,
                         ids=[f"{field}={value!r}" for field, value, _, _ in INVALID_FIELDS])
def test_each_invalid_setting_gets_a_422_naming_its_field(admin_api: AdminApi, field: str, value: Any,
                                                          loc: tuple[Any, ...], message: str) -> None:
    client = admin_api.as_tenant("tenant-a")

    response = client.post("/api/agents", json={**AGENT_BODY, field: value})

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert tuple(error["loc"]) == ("body", *loc)
    assert message in error["msg"]
    assert client.get("/api/agents").json() == {"agents": []}  # nothing written


def test_leave_message_needs_a_voicemail_message_on_create_and_on_patch(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    response = client.post("/api/agents", json={**AGENT_BODY, "answering_machine": "leave_message"})
    assert response.status_code == 422
    assert [tuple(error["loc"]) for error in response.json()["detail"]] == [("body", "voicemail_message")]

    agent = create_agent(client)
    url = f"/api/agents/{agent['agent_id']}"
    # The patch alone is well formed; the agent it would make is not.
    response = client.patch(url, json={"version": 1, "answering_machine": "leave_message"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (tuple(error["loc"]), error["msg"]) == (
        ("body", "voicemail_message"), "Value error, is required when answering_machine is leave_message")

    response = client.patch(url, json={"version": 1, "answering_machine": "leave_message",
                                       "voicemail_message": "Sorry we missed you, please call us back."})
    assert response.status_code == 200 and response.json()["version"] == 2


def test_every_invalid_field_of_a_request_is_reported_at_once(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    response = client.post("/api/agents", json={**AGENT_BODY, "voice": "nova", "speed": 3, "tools": ["teleport"],
                                                 "transfer_number": "call me", "instructions": "{nope}"})
    assert response.status_code == 422
    assert {tuple(error["loc"])[1] for error in response.json()["detail"]} == {
        "voice", "speed", "tools", "transfer_number", "instructions"}


def test_patch_checks_its_fields_and_refuses_null_for_settings_that_need_a_value(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    url = f"/api/agents/{create_agent(client)['agent_id']}"

    for change, loc in [({"speed": 9}, ("body", "speed")), ({"voice": None}, ("body", "voice")),
                        ({"greeting": "Hi {who}"}, ("body", "greeting")), ({"colour": "red"}, ("body", "colour")),
                        ({}, ("body", "version"))]:
        response = client.patch(url, json={"version": 1, **change} if change else {"name": "x"})
        assert response.status_code == 422, (change, response.text)
        assert loc in [tuple(error["loc"]) for error in response.json()["detail"]], (change, response.text)
    assert client.get(url).json()["version"] == 1


def test_a_template_may_use_the_variables_it_declares(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    agent = create_agent(client, template_variables=["order_id"],
                         instructions="Call {caller_number} about order {order_id}. Literal {{braces}} are fine.")
    assert agent["template_variables"] == ["order_id"]

    response = client.patch(f"/api/agents/{agent['agent_id']}", json={"version": 1, "template_variables": []})
    assert response.status_code == 422  # the instructions still use {order_id}
    [error] = response.json()["detail"]
    assert tuple(error["loc"]) == ("body", "instructions") and "unknown variable {order_id}" in error["msg"]


def test_an_update_based_on_a_stale_version_gets_409_and_changes_nothing(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    agent = create_agent(client)
    url = f"/api/agents/{agent['agent_id']}"
    assert client.patch(url, json={"version": 1, "name": "First"}).status_code == 200

    stale_patch = client.patch(url, json={"version": 1, "name": "Second"})
    stale_put = client.put(url, json={**AGENT_BODY, "name": "Third", "version": 1})
    future = client.patch(url, json={"version": 7, "name": "Fourth"})

    for response in (stale_patch, stale_put, future):
        assert response.status_code == 409, response.text
        assert response.json() == {"detail": "the agent has changed: it is at version 2", "current_version": 2}
    assert (client.get(url).json()["name"], client.get(url).json()["version"]) == ("First", 2)


def test_of_concurrent_updates_from_one_version_exactly_one_wins(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    url = f"/api/agents/{create_agent(client)['agent_id']}"

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda n: client.patch(url, json={"version": 1, "name": f"Editor {n}"}), range(6)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 409, 409, 409, 409, 409], [response.text for response in responses]
    [winner] = [response.json() for response in responses if response.status_code == 200]
    assert client.get(url).json()["name"] == winner["name"] and winner["version"] == 2


def test_preview_renders_instructions_and_greeting_for_sample_variables(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    agent = create_agent(client, template_variables=["order_id"],
                         instructions="{business_name}, {local_date} {local_time} ({timezone}). Caller {caller_number},"
                                      " name {customer_name}, order {order_id}.",
                         greeting="Hi {customer_name}, this is {business_name}.")
    url = f"/api/agents/{agent['agent_id']}/preview"

    response = client.post(url, json={"caller_number": "+15551234567", "at": "2030-03-01T14:00:00Z",
                                      "variables": {"customer_name": "Jordan", "order_id": "A-17"}})

    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["instructions"] == ("Bright Plumbing, Friday 01 March 2030 09:00 (America/New_York). "
                                       "Caller +15551234567, name Jordan, order A-17.")
    assert preview["greeting"] == "Hi Jordan, this is Bright Plumbing."
    assert preview["unfilled"] == []

    bare = client.post(url)  # no body: what a call with nothing known would hear
    assert bare.status_code == 200, bare.text
    assert bare.json()["greeting"] == "Hi , this is Bright Plumbing."
    assert bare.json()["unfilled"] == ["order_id"] and "order {order_id}." in bare.json()["instructions"]

    bad = client.post(url, json={"variables": {"Order Id": "x"}, "caller_number": "nobody",
                                 "at": "0001-01-01T00:00:00+05:00"})
    assert bad.status_code == 422
    assert {tuple(error["loc"])[:2] for error in bad.json()["detail"]} == {
        ("body", "variables"), ("body", "caller_number"), ("body", "at")}


def test_a_tenant_cannot_see_or_change_another_tenants_agents(admin_api: AdminApi) -> None:
    alice, bob = admin_api.as_tenant("tenant-a"), admin_api.as_tenant("tenant-b")
    agent = create_agent(alice)
    url = f"/api/agents/{agent['agent_id']}"
    bobs = create_agent(bob, name="Bob's agent")

    assert [listed["agent_id"] for listed in bob.get("/api/agents").json()["agents"]] == [bobs["agent_id"]]
    for response in (bob.get(url), bob.put(url, json={**AGENT_BODY, "version": 1}),
                     bob.patch(url, json={"version": 1, "name": "Mine now"}), bob.post(f"{url}/preview"),
                     bob.delete(url)):
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": "agent not found"}
    assert alice.get(url).json() == agent  # untouched


@pytest.mark.parametrize("agent_id", ["no-such-agent", "agent%20with%20spaces", "x" * 200])
def test_an_unknown_agent_is_not_found(admin_api: AdminApi, agent_id: str) -> None:
    client = admin_api.as_tenant("tenant-a")
    assert client.get(f"/api/agents/{agent_id}").status_code == 404
    assert client.patch(f"/api/agents/{agent_id}", json={"version": 1}).status_code == 404


def test_the_api_exposes_exactly_the_settings_the_domain_stores(admin_api: AdminApi) -> None:
    spec = admin_api.client().get("/api/openapi.json").json()
    assert tuple(spec["components"]["schemas"]["AgentSettings"]["properties"]) == agents.SETTINGS
    assert set(spec["components"]["schemas"]["AgentPatch"]["properties"]) == {*agents.SETTINGS, "version"}


def test_an_agent_that_still_answers_a_number_is_not_deleted(admin_api: AdminApi) -> None:
    client = admin_api.as_tenant("tenant-a")
    agent = create_agent(client)
    PhoneNumber("+15550142", agent_id=agent["agent_id"], tenant_id="tenant-a").save()
    url = f"/api/agents/{agent['agent_id']}"

    refused = client.delete(url)

    assert refused.status_code == 409 and "+15550142" in refused.json()["detail"]
    assert client.get(url).status_code == 200
    PhoneNumber("+15550142").delete()
    assert client.delete(url).status_code == 204
