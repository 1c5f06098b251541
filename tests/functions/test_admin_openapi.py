"""Schemathesis against the admin API's own OpenAPI spec (/api/openapi.json), over HTTP through the local gateway.

Every operation gets generated requests, valid and invalid, sent with a tenant's key: none may get a server
error. The Twilio REST stand-in answers the number and outbound-call routes. Examples are bounded per
operation so the run stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from local.asgi_server import ThreadedServer
from local.environment import DEFAULTS
from local.gateway import DEFAULT_TEMPLATE, build_app
from local.twilio_rest import TwilioRestStandIn
from tests.functions.admin_api import AGENT_BODY, seed_calls
from voiceline import agents, api_keys

EXAMPLES_PER_OPERATION = 25
TENANT = "tenant-schemathesis"


class Admin:
    def __init__(self, schema: Any, key: str, known: dict[str, str]) -> None:
        self.schema = schema
        self.headers = {"Authorization": f"Bearer {key}"}
        self.known = known
        """Path parameters that name real resources, so generated requests also reach past the 404."""

    def pinned(self, case: Any) -> Any:
        if case.path_parameters:
            case.path_parameters = {name: self.known.get(name, value) for name, value in case.path_parameters.items()}
        return case


@pytest.fixture
def admin(dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Admin]:
    stand_in = TwilioRestStandIn(DEFAULTS["TWILIO_ACCOUNT_SID"], DEFAULTS["TWILIO_AUTH_TOKEN"])
    with ThreadedServer(stand_in.app()) as twilio, ThreadedServer(build_app(DEFAULT_TEMPLATE)) as gateway:
        monkeypatch.setenv("TWILIO_API_BASE_URL", twilio.url)
        key = api_keys.issue_key(TENANT, "schemathesis").key
        # Something for generated requests to find: an agent and a page of calls.
        agent = agents.create_agent(TENANT, {**AGENT_BODY, "turn_detection": {"type": "semantic_vad"}})
        [call_sid, *_] = seed_calls(TENANT, agent.agent_id, 3)
        yield Admin(schemathesis.openapi.from_url(f"{gateway.url}/api/openapi.json"), key,
                    {"agent_id": agent.agent_id, "call_sid": call_sid})


def test_the_spec_describes_every_admin_route(admin: Admin) -> None:
    paths = set(admin.schema.raw_schema["paths"])
    assert {"/api/agents", "/api/agents/{agent_id}", "/api/agents/{agent_id}/preview", "/api/calls",
            "/api/calls/{call_sid}"} <= paths


def test_no_generated_request_gets_a_server_error(admin: Admin) -> None:
    """Valid and invalid requests for every operation; a 5xx, or a reply its schema does not describe, fails."""
    # Deletes last, so the other operations still find the pinned agent.
    operations = sorted((result.ok() for result in admin.schema.get_all_operations()),
                        key=lambda operation: operation.method.upper() == "DELETE")
    assert len(operations) >= 7

    for operation in operations:
        valid, invalid = (operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
        # Half the examples are valid requests for the seeded resources: they get past the 404 to the real work.
        strategy = st.one_of(valid.map(admin.pinned), valid.map(admin.pinned), valid, invalid)

        @given(case=strategy)
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def no_server_error(case: Any) -> None:
            case.call_and_validate(headers=admin.headers, checks=[not_a_server_error, response_schema_conformance])

        try:
            no_server_error()
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error
