"""Stream tokens: only our own voice webhook can start a media stream, for that call, for a while."""

from __future__ import annotations

import base64

import pytest

from voiceline.stream_token import (
    DEFAULT_TTL_S,
    CallFacts,
    InvalidStreamToken,
    issue,
    issue_facts,
    verify,
    verify_facts,
)

KEY = b"test-stream-token-key"
CALL_SID = "CA" + "0123456789abcdef" * 2
AGENT_ID = "agent-dental-front-desk"
TENANT_ID = "tenant-smile-dental"
NOW = 1_750_000_000.0


def _issue(**overrides: object) -> str:
    arguments = {"key": KEY, "call_sid": CALL_SID, "agent_id": AGENT_ID, "tenant_id": TENANT_ID, "now": NOW}
    arguments.update(overrides)
    return issue(**arguments)  # type: ignore[arg-type]


def test_round_trip_returns_the_claims() -> None:
    claims = verify(KEY, _issue(), CALL_SID, AGENT_ID, now=NOW + 1)
    assert (claims.call_sid, claims.agent_id, claims.tenant_id) == (CALL_SID, AGENT_ID, TENANT_ID)
    assert claims.expires_at == int(NOW) + DEFAULT_TTL_S


def test_token_made_with_another_key_is_rejected() -> None:
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify(KEY, _issue(key=b"someone-elses-key"), CALL_SID, AGENT_ID, now=NOW)


def test_token_for_another_call_is_rejected() -> None:
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify(KEY, _issue(), "CA" + "f" * 32, AGENT_ID, now=NOW)


def test_token_for_another_agent_is_rejected() -> None:
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify(KEY, _issue(), CALL_SID, "agent-someone-else", now=NOW)


def test_swapping_in_another_tenant_is_rejected() -> None:
    version, _, expires_at, signature = _issue().split(".")
    other_tenant = base64.urlsafe_b64encode(b"tenant-rival").rstrip(b"=").decode()
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify(KEY, f"{version}.{other_tenant}.{expires_at}.{signature}", CALL_SID, AGENT_ID, now=NOW)


def test_extending_the_expiry_is_rejected() -> None:
    version, tenant, expires_at, signature = _issue().split(".")
    extended = f"{version}.{tenant}.{int(expires_at) + 3600}.{signature}"
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify(KEY, extended, CALL_SID, AGENT_ID, now=NOW)


def test_expired_token_is_rejected() -> None:
    token = _issue(ttl_s=60)
    assert verify(KEY, token, CALL_SID, AGENT_ID, now=NOW + 60).tenant_id == TENANT_ID
    with pytest.raises(InvalidStreamToken, match="expired"):
        verify(KEY, token, CALL_SID, AGENT_ID, now=NOW + 61)


def test_unknown_version_is_rejected() -> None:
    _, rest = _issue().split(".", 1)
    with pytest.raises(InvalidStreamToken, match="version"):
        verify(KEY, f"v0.{rest}", CALL_SID, AGENT_ID, now=NOW)


@pytest.mark.parametrize("token", [
    None,  # the customParameter was missing
    "",
    "v1",
    "v1.a.b",
    "v1.a.b.c.d",
    "v1.dGVuYW50.not-a-number.c2ln",
    "v1.***.1750000300.c2ln",  # not base64
    "v1._w.1750000300.c2ln",  # the tenant is not UTF-8
])
def test_malformed_token_is_rejected(token: str | None) -> None:
    with pytest.raises(InvalidStreamToken):
        verify(KEY, token, CALL_SID, AGENT_ID, now=NOW)  # type: ignore[arg-type]


def test_token_fits_a_twilio_stream_parameter() -> None:
    """Twilio rejects a <Parameter> value of 500 characters or more."""
    assert len(_issue(tenant_id="t" * 128)) < 500


FACTS = CallFacts("0123456789abcdef", "+447911123456789", "+15550100", "inbound", has_variables=False)


def test_call_facts_round_trip_and_stay_well_under_twilios_parameter_limit() -> None:
    signed = issue_facts(KEY, CALL_SID, AGENT_ID, FACTS)
    assert verify_facts(KEY, signed, CALL_SID, AGENT_ID) == FACTS
    assert len(signed) < 200  # Twilio takes up to 500 characters a Parameter


@pytest.mark.parametrize("call_sid, agent_id", [("CA" + "f" * 32, AGENT_ID), (CALL_SID, "agent-someone-else")])
def test_call_facts_for_another_call_or_agent_are_rejected(call_sid: str, agent_id: str) -> None:
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify_facts(KEY, issue_facts(KEY, CALL_SID, AGENT_ID, FACTS), call_sid, agent_id)


def test_call_facts_with_a_number_swapped_in_are_rejected() -> None:
    version, _, signature = issue_facts(KEY, CALL_SID, AGENT_ID, FACTS).split(".")
    body = base64.urlsafe_b64encode(b"0123456789abcdef|+15559999|+15550100|inbound|0").rstrip(b"=").decode()
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify_facts(KEY, f"{version}.{body}.{signature}", CALL_SID, AGENT_ID)


@pytest.mark.parametrize("signed", ["", "f1.x", "f1.%%%.sig", "f2.YQ.sig", "f1.YXxi.sig"])
def test_malformed_call_facts_are_rejected(signed: str) -> None:
    with pytest.raises(InvalidStreamToken):
        verify_facts(KEY, signed, CALL_SID, AGENT_ID)
