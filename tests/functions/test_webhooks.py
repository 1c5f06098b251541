"""The webhooks Lambda, called with events/webhooks samples and signed variants of them."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from botocore.exceptions import ConnectTimeoutError

from local.environment import local_environment
from local.gateway import import_module_from
from voiceline import agents, stream_token
from voiceline.calls import get_call, mark_stream_started
from voiceline.models import Agent, Call, PhoneNumber

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = ROOT / "functions" / "webhooks" / "app.py"
webhooks = import_module_from(FUNCTION, "webhooks_app")

API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"
CALL_SID = "CA5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5"
TENANT, AGENT, NUMBER, CALLER = "tenant-test", "agent-test", "+15550100", "+15551234567"


@pytest.fixture(autouse=True)
def no_custom_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLIC_WEBHOOK_BASE_URL", raising=False)


@pytest.fixture
def agent(dynamodb: None) -> Agent:
    agent = Agent(AGENT, tenant_id=TENANT, name="Ava", instructions="You answer for {business_name}.",
                  greeting="Hello!")
    agent.save()
    PhoneNumber(NUMBER, agent_id=AGENT, tenant_id=TENANT).save()
    return agent


def form_of(event: dict[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(base64.b64decode(event["body"]).decode(), keep_blank_values=True))


def signed(name: str, signer: Any, url: str | None = None, **changes: str | None) -> dict[str, Any]:
    """A sample event with form fields changed (None removes one), signed by Twilio for `url`."""
    event = copy.deepcopy(load_sample(name))
    form = {key: value for key, value in {**form_of(event), **changes}.items() if value is not None}
    event["body"] = base64.b64encode(urlencode(form).encode()).decode()
    event["headers"]["x-twilio-signature"] = signer.sign(url or API_URL + event["rawPath"], form)
    return event


def load_sample(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / "webhooks" / name).read_text())


def stream_parameters(body: str) -> tuple[str, dict[str, str]]:
    """The Stream URL and its Parameters from answer TwiML."""
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None, body
    return stream.attrib["url"], {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}


def assert_goodbye(result: dict[str, Any], words: str) -> None:
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "text/xml"
    response = ET.fromstring(result["body"])
    assert [child.tag for child in response] == ["Say", "Hangup"]
    assert words in response.find("Say").text


def test_voice_webhook_connects_the_caller_to_the_bridge(agent: Agent, lambda_context: Any) -> None:
    result = webhooks.lambda_handler(load_sample("voice.json"), lambda_context)

    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "text/xml"
    url, parameters = stream_parameters(result["body"])
    assert url == os.environ["BRIDGE_PUBLIC_URL"] + "/media-stream"
    assert parameters.keys() == {"callSid", "agentId", "streamToken", "callFacts"}
    assert parameters["callSid"] == CALL_SID
    assert parameters["agentId"] == AGENT
    assert all(len(value) < 500 for value in parameters.values())
    key = os.environ["STREAM_TOKEN_KEY"].encode()
    claims = stream_token.verify(key, parameters["streamToken"], CALL_SID, AGENT)
    assert claims.tenant_id == TENANT
    # What the bridge would otherwise read before greeting, vouched for: the agent exactly as routed, the call.
    facts = stream_token.verify_facts(key, parameters["callFacts"], CALL_SID, AGENT)
    call = get_call(CALL_SID)
    assert call is not None and facts == stream_token.CallFacts(
        agents.fingerprint(Agent.get(agent.agent_id)), call.from_number, call.to_number, "inbound", has_variables=False)


def test_voice_webhook_records_a_ringing_call(agent: Agent, lambda_context: Any) -> None:
    webhooks.lambda_handler(load_sample("voice.json"), lambda_context)

    call = get_call(CALL_SID)
    assert call is not None
    assert (call.status, call.direction, call.tenant_id, call.agent_id) == ("ringing", "inbound", TENANT, AGENT)
    assert (call.from_number, call.to_number) == (CALLER, NUMBER)


@pytest.mark.parametrize("signature", ["", "forged0000000000000000000000=", None], ids=["empty", "forged", "missing"])
def test_unsigned_or_forged_voice_webhook_is_refused(agent: Agent, lambda_context: Any, signature: str | None) -> None:
    event = load_sample("voice.json")
    if signature is None:
        del event["headers"]["x-twilio-signature"]
    else:
        event["headers"]["x-twilio-signature"] = signature

    result = webhooks.lambda_handler(event, lambda_context)

    assert result["statusCode"] == 403
    assert result["headers"]["Content-Type"] == "text/plain"
    assert get_call(CALL_SID) is None


def test_form_changed_after_signing_is_refused(agent: Agent, lambda_context: Any) -> None:
    event = load_sample("voice.json")
    event["body"] = base64.b64encode(urlencode({**form_of(event), "From": "+15559999999"}).encode()).decode()

    assert webhooks.lambda_handler(event, lambda_context)["statusCode"] == 403
    assert get_call(CALL_SID) is None


def test_signature_for_another_url_is_refused(agent: Agent, lambda_context: Any, twilio_signer: Any) -> None:
    http_url = API_URL.replace("https://", "http://") + "/twilio/voice"
    event = signed("voice.json", twilio_signer, url=http_url)

    assert webhooks.lambda_handler(event, lambda_context)["statusCode"] == 403
    assert get_call(CALL_SID) is None


def test_signed_voice_webhook_without_call_fields_is_a_bad_request(agent: Agent, lambda_context: Any,
                                                                    twilio_signer: Any) -> None:
    event = signed("voice.json", twilio_signer, CallSid=None)

    assert webhooks.lambda_handler(event, lambda_context)["statusCode"] == 400


def test_unknown_number_hears_a_polite_goodbye(agent: Agent, lambda_context: Any, twilio_signer: Any) -> None:
    event = signed("voice.json", twilio_signer, To="+15559990000", Called="+15559990000")

    assert_goodbye(webhooks.lambda_handler(event, lambda_context), "not in service")
    assert get_call(CALL_SID) is None


def test_disabled_agent_hears_a_polite_goodbye(agent: Agent, lambda_context: Any) -> None:
    agent.update(actions=[Agent.enabled.set(False)])

    assert_goodbye(webhooks.lambda_handler(load_sample("voice.json"), lambda_context), "not in service")
    assert get_call(CALL_SID) is None


def test_retried_voice_webhook_does_not_reset_the_call(agent: Agent, lambda_context: Any) -> None:
    webhooks.lambda_handler(load_sample("voice.json"), lambda_context)
    first = get_call(CALL_SID)
    mark_stream_started(CALL_SID, "MZ00000000000000000000000000000000", first.started_at)

    retried = webhooks.lambda_handler(load_sample("voice.json"), lambda_context)

    assert stream_parameters(retried["body"])[1]["callSid"] == CALL_SID
    call = get_call(CALL_SID)
    assert (call.status, call.started_at) == ("in_progress", first.started_at)


def test_outbound_call_routes_by_our_from_number(agent: Agent, lambda_context: Any, twilio_signer: Any) -> None:
    callee = "+15557654321"
    event = signed("voice.json", twilio_signer, Direction="outbound-api", From=NUMBER, To=callee)

    result = webhooks.lambda_handler(event, lambda_context)

    assert stream_parameters(result["body"])[1]["agentId"] == AGENT
    call = get_call(CALL_SID)
    assert (call.direction, call.from_number, call.to_number) == ("outbound", NUMBER, callee)


def unreachable(*args: Any, **kwargs: Any) -> None:
    raise ConnectTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")


@pytest.mark.parametrize("failure", ["routing table missing", "calls table missing", "dynamodb unreachable"])
def test_dynamodb_failure_answers_politely_instead_of_a_server_error(
        agent: Agent, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        failure: str) -> None:
    if failure == "routing table missing":
        PhoneNumber.delete_table()
    elif failure == "calls table missing":
        Call.delete_table()
    else:
        monkeypatch.setattr(PhoneNumber, "get", unreachable)

    assert_goodbye(webhooks.lambda_handler(load_sample("voice.json"), lambda_context), "call back")
    assert any(record.exc_info for record in caplog.records if record.message == "could not route the call")


def test_custom_domain_signatures_check_against_the_public_base_url(
        agent: Agent, lambda_context: Any, twilio_signer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_WEBHOOK_BASE_URL", "https://voice.example.com/")

    on_domain = signed("voice.json", twilio_signer, url="https://voice.example.com/twilio/voice")
    on_api_host = load_sample("voice.json")

    assert webhooks.lambda_handler(on_domain, lambda_context)["statusCode"] == 200
    assert get_call(CALL_SID) is not None
    assert webhooks.lambda_handler(on_api_host, lambda_context)["statusCode"] == 403


def test_status_callback_stores_twilio_status_and_duration(agent: Agent, lambda_context: Any) -> None:
    webhooks.lambda_handler(load_sample("voice.json"), lambda_context)

    result = webhooks.lambda_handler(load_sample("status.json"), lambda_context)

    assert result["statusCode"] == 204
    call = get_call(CALL_SID)
    assert (call.twilio_status, call.twilio_duration_s) == ("completed", 42)


def test_repeated_status_callback_is_harmless(agent: Agent, lambda_context: Any) -> None:
    webhooks.lambda_handler(load_sample("voice.json"), lambda_context)

    results = [webhooks.lambda_handler(load_sample("status.json"), lambda_context) for _ in range(2)]

    assert [result["statusCode"] for result in results] == [204, 204]
    call = get_call(CALL_SID)
    assert (call.twilio_status, call.twilio_duration_s) == ("completed", 42)


def test_late_ringing_after_completed_does_not_regress(agent: Agent, lambda_context: Any, twilio_signer: Any) -> None:
    webhooks.lambda_handler(load_sample("voice.json"), lambda_context)
    webhooks.lambda_handler(load_sample("status.json"), lambda_context)

    late = signed("status.json", twilio_signer, CallStatus="ringing", CallDuration=None)

    assert webhooks.lambda_handler(late, lambda_context)["statusCode"] == 204
    assert get_call(CALL_SID).twilio_status == "completed"


def test_status_for_an_unknown_call_is_acknowledged(agent: Agent, lambda_context: Any) -> None:
    assert webhooks.lambda_handler(load_sample("status.json"), lambda_context)["statusCode"] == 204
    assert get_call(CALL_SID) is None


def test_forged_status_callback_is_refused(agent: Agent, lambda_context: Any) -> None:
    webhooks.lambda_handler(load_sample("voice.json"), lambda_context)
    event = load_sample("status.json")
    event["headers"]["x-twilio-signature"] = "forged0000000000000000000000="

    assert webhooks.lambda_handler(event, lambda_context)["statusCode"] == 403
    assert get_call(CALL_SID).twilio_status is None


def test_status_with_a_non_numeric_duration_is_a_bad_request(agent: Agent, lambda_context: Any,
                                                             twilio_signer: Any) -> None:
    event = signed("status.json", twilio_signer, CallDuration="forty")

    assert webhooks.lambda_handler(event, lambda_context)["statusCode"] == 400


def test_importing_the_handler_leaves_twilio_rest_out_of_the_cold_start() -> None:
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(FUNCTION)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(name for name in sys.modules if name.startswith('twilio')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=local_environment(), cwd=FUNCTION.parent,
                            capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert "twilio.twiml.voice_response" in result.stdout
    assert "twilio.rest" not in result.stdout
