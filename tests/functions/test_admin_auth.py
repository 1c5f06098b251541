"""Admin API keys: stored hashed, one tenant each; a request without a valid key gets 401 and touches nothing."""

from __future__ import annotations

import hashlib

import pytest

from tests.functions.admin_api import (
    AGENT_BODY,
    AdminApi,
    admin_api_fixture,  # noqa: F401 (the admin_api fixture)
)
from voiceline import api_keys, tenants
from voiceline.models import ApiKey, TenantData

ROUTES = [("GET", "/api/agents"), ("POST", "/api/agents"), ("GET", "/api/agents/agent-x"),
          ("PUT", "/api/agents/agent-x"), ("PATCH", "/api/agents/agent-x"), ("DELETE", "/api/agents/agent-x"),
          ("POST", "/api/agents/agent-x/preview"), ("GET", "/api/calls"), ("GET", "/api/calls/CA123")]


MISSING = "missing API key: send the header Authorization: Bearer <key>"


@pytest.mark.parametrize(("authorization", "detail"), [
    (None, MISSING), ("Bearer", MISSING), ("Basic dXNlcjpwYXNz", MISSING), ("Token vl_abc", MISSING),
    ("Bearer vl_not-a-key", "invalid API key"), ("Bearer " + "x" * 500, "invalid API key"),
    ("Bearer ключ".encode(), "invalid API key"),  # UTF-8 bytes, as a careless client sends them
])
def test_every_route_answers_401_without_a_valid_key(admin_api: AdminApi, authorization: str | bytes | None,
                                                     detail: str) -> None:
    admin_api.as_tenant("tenant-a")  # a real key exists; none of these is it
    client = admin_api.client({"Authorization": authorization} if authorization else None)

    for method, path in ROUTES:
        response = client.request(method, path, json=AGENT_BODY if method in ("POST", "PUT") else None)

        assert response.status_code == 401, (method, path, response.text)
        assert response.json() == {"detail": detail}
        assert response.headers["www-authenticate"] == (
            "Bearer" if detail == MISSING else 'Bearer error="invalid_token"')
    assert api_keys.tenant_for_key("vl_not-a-key") is None


def test_a_valid_key_is_accepted_in_any_case_of_the_scheme(admin_api: AdminApi) -> None:
    key = api_keys.issue_key("tenant-a", "tests").key
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert admin_api.client({"Authorization": f"{scheme} {key}"}).get("/api/agents").status_code == 200


def test_keys_are_stored_only_as_their_hash_and_belong_to_one_tenant(dynamodb: None) -> None:
    issued = api_keys.issue_key("tenant-a", "laptop")

    [stored] = list(ApiKey.scan())
    assert stored.key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
    assert (stored.tenant_id, stored.name, stored.prefix) == ("tenant-a", "laptop", issued.key[:8])
    assert issued.key not in str(stored.attribute_values)
    assert issued.key.startswith("vl_") and len(issued.key) >= 40
    assert api_keys.tenant_for_key(issued.key) == "tenant-a"
    assert api_keys.tenant_for_key(issued.key + "x") is None
    assert api_keys.tenant_for_key("") is None
    assert api_keys.issue_key("tenant-a", "second").key != issued.key


def test_the_docs_and_the_openapi_spec_need_no_key(admin_api: AdminApi) -> None:
    client = admin_api.client()
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/api/openapi.json" in docs.text
    spec = client.get("/api/openapi.json").json()
    assert {"/api/agents", "/api/agents/{agent_id}", "/api/agents/{agent_id}/preview", "/api/calls",
            "/api/calls/{call_sid}"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "An admin API key, sent as `Authorization: Bearer vl_…` (see `make admin-key`)."}


def test_a_tenant_is_created_once_with_its_profile(dynamodb: None) -> None:
    assert tenants.create_tenant("acme-plumbing", "Acme Plumbing") is True
    assert tenants.create_tenant("acme-plumbing", "Someone else") is False
    assert TenantData.get("acme-plumbing", "profile").data["name"] == "Acme Plumbing"
    with pytest.raises(ValueError, match="tenant id"):
        tenants.create_tenant("Not A Tenant!", "x")
