"""Hypothesis posts odd requests to the webhooks Lambda: any form, any headers, signed by Twilio or not.

The handler is called with API Gateway v2 events built from the samples in events/webhooks. Whatever
comes in, the answer is a deliberate one: 403 unless Twilio's signature matches, then TwiML (200),
204 for a status, or 400 naming what is missing or wrong. Never a 5xx, which would make Twilio play
its "application error" to the caller.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.gateway import import_module_from
from tests.conftest import LambdaContext, TwilioSigner
from voiceline.models import Agent, PhoneNumber

ROOT = Path(__file__).resolve().parents[2]
webhooks = import_module_from(ROOT / "functions" / "webhooks" / "app.py", "webhooks_app_fuzz")
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"
SAMPLES = {"/twilio/voice": json.loads((ROOT / "events" / "webhooks" / "voice.json").read_text()),
           "/twilio/status": json.loads((ROOT / "events" / "webhooks" / "status.json").read_text())}
FIELDS = ["CallSid", "From", "To", "Direction", "AnsweredBy", "CallStatus", "CallDuration", "AccountSid"]

texts = st.text(max_size=40)
forms = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), texts | st.sampled_from(
    ["CA" + "1" * 32, "+15550100", "+15551234567", "outbound-api", "machine_start", "completed", "12", "-3"]),
    max_size=8)
header_values = st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=60)


@pytest.fixture(autouse=True)
def no_custom_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLIC_WEBHOOK_BASE_URL", raising=False)


def _event(path: str, form: dict[str, str], extra_headers: dict[str, str], body: str | None,
           signature: str | None) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLES[path])
    event["headers"].update({name.lower(): value for name, value in extra_headers.items()})
    event["headers"].pop("x-twilio-signature", None)
    if signature is not None:
        event["headers"]["x-twilio-signature"] = signature
    event["body"] = base64.b64encode((urlencode(form) if body is None else body).encode()).decode()
    return event


def test_any_request_gets_a_deliberate_answer_and_only_signed_ones_get_past_the_signature(dynamodb: None) -> None:
    Agent("agent-fuzz", tenant_id="tenant-fuzz", name="Ava", instructions="Hi", greeting="Hello").save()
    PhoneNumber("+15550100", agent_id="agent-fuzz", tenant_id="tenant-fuzz").save()
    signer = TwilioSigner(os.environ["TWILIO_AUTH_TOKEN"])

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(path=st.sampled_from(sorted(SAMPLES)), form=forms,
           headers=st.dictionaries(st.sampled_from(["x-forwarded-proto", "host", "content-type", "x-custom"]),
                                   header_values, max_size=3),
           raw_body=st.none() | st.text(max_size=80), signing=st.sampled_from(["signed", "unsigned", "forged"]))
    def one_request(path: str, form: dict[str, str], headers: dict[str, str], raw_body: str | None,
                    signing: str) -> None:
        headers = {name: value for name, value in headers.items() if name not in ("host", "x-forwarded-proto")} \
            if signing == "signed" else headers  # a signed request reached the URL Twilio signed
        signature = {"signed": signer.sign(API_URL + path, form if raw_body is None else {}),
                     "unsigned": None, "forged": signer.sign(API_URL + path, {"CallSid": "CA-other"})}[signing]
        if signing == "signed" and raw_body is not None:
            signature = None  # a body that is not the signed form cannot be signed here: treat as unsigned
        response = webhooks.lambda_handler(_event(path, form, headers, raw_body, signature), LambdaContext())
        status = response["statusCode"]
        assert status in (200, 204, 400, 403), response
        if signature is None or signing == "forged":
            assert status == 403 or (signing == "forged" and form == {"CallSid": "CA-other"})
        else:
            assert status != 403, response  # Twilio's own request is never refused as forged
            if status == 200:
                assert ET.fromstring(response["body"]).tag == "Response"  # TwiML Twilio can play

    one_request()
