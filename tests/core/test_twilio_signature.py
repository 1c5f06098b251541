"""Twilio signatures: the URL is rebuilt as Twilio called it, behind API Gateway, an ALB or nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceline.settings import twilio_auth_token
from voiceline.twilio_signature import is_valid, public_url

if TYPE_CHECKING:
    from tests.conftest import TwilioSigner

API_HOST = "abc123.execute-api.us-east-1.amazonaws.com"
FORM = {"CallSid": "CA" + "1" * 32, "From": "+15551230001", "To": "+15559870002"}


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def test_behind_api_gateway_the_url_is_https() -> None:
    headers = {"host": API_HOST, "x-forwarded-proto": "https", "x-forwarded-port": "443"}
    url = public_url(headers, "/twilio/voice", default_scheme="http")
    assert url == f"https://{API_HOST}/twilio/voice"


def test_behind_an_alb_a_media_stream_url_is_wss() -> None:
    headers = _lower({"Host": "bridge.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"})
    url = public_url(headers, "/media-stream", default_scheme="ws", websocket=True)
    assert url == "wss://bridge.example.com/media-stream"


def test_locally_a_media_stream_url_is_plain_ws() -> None:
    url = public_url({"host": "127.0.0.1:8080"}, "/media-stream", default_scheme="ws", websocket=True)
    assert url == "ws://127.0.0.1:8080/media-stream"


def test_forwarded_http_becomes_ws_for_a_websocket() -> None:
    headers = {"host": "127.0.0.1", "x-forwarded-proto": "http"}
    assert public_url(headers, "/media-stream", default_scheme="ws", websocket=True) == "ws://127.0.0.1/media-stream"


def test_a_nonstandard_forwarded_port_is_kept() -> None:
    headers = {"host": "voice.example.com", "x-forwarded-proto": "https", "x-forwarded-port": "8443"}
    assert public_url(headers, "/twilio/voice", default_scheme="http") == "https://voice.example.com:8443/twilio/voice"


def test_a_port_already_in_the_host_is_not_repeated() -> None:
    headers = {"host": "voice.example.com:8443", "x-forwarded-proto": "https", "x-forwarded-port": "8443"}
    assert public_url(headers, "/twilio/voice", default_scheme="http") == "https://voice.example.com:8443/twilio/voice"


def test_the_first_of_several_proxies_wins() -> None:
    headers = {"host": "internal:8080", "x-forwarded-host": "voice.example.com, proxy.internal",
               "x-forwarded-proto": "https, http"}
    assert public_url(headers, "/twilio/voice", default_scheme="http") == "https://voice.example.com/twilio/voice"


def test_base_url_overrides_the_headers() -> None:
    headers = {"host": API_HOST, "x-forwarded-proto": "https"}
    url = public_url(headers, "/twilio/voice", default_scheme="http", base_url="https://voice.example.com/")
    assert url == "https://voice.example.com/twilio/voice"


def test_query_string_is_part_of_the_signed_url() -> None:
    headers = {"host": API_HOST, "x-forwarded-proto": "https"}
    assert public_url(headers, "/twilio/status", default_scheme="http", query="attempt=2&x=y") == (
        f"https://{API_HOST}/twilio/status?attempt=2&x=y")
    assert public_url({}, "/twilio/status", default_scheme="http", query="a=1",
                      base_url="https://voice.example.com") == "https://voice.example.com/twilio/status?a=1"


def test_a_request_signed_by_twilio_is_valid(twilio_signer: TwilioSigner) -> None:
    url = f"https://{API_HOST}/twilio/voice"
    assert is_valid(twilio_auth_token(), url, FORM, twilio_signer.sign(url, FORM))


def test_a_media_stream_handshake_signed_over_its_wss_url_is_valid(twilio_signer: TwilioSigner) -> None:
    url = "wss://bridge.example.com/media-stream"
    assert is_valid(twilio_auth_token(), url, {}, twilio_signer.sign(url))


def test_forged_or_altered_requests_are_invalid(twilio_signer: TwilioSigner) -> None:
    url = f"https://{API_HOST}/twilio/voice"
    token = twilio_auth_token()
    signature = twilio_signer.sign(url, FORM)
    assert not is_valid("another-auth-token", url, FORM, signature)
    assert not is_valid(token, url, {**FORM, "To": "+15550000000"}, signature)
    assert not is_valid(token, f"http://{API_HOST}/twilio/voice", FORM, signature)
    assert not is_valid(token, url, FORM, None)
    assert not is_valid(token, url, FORM, "")


def test_a_host_header_that_makes_no_url_is_refused_not_an_error(twilio_signer: TwilioSigner) -> None:
    url = public_url(_lower({"Host": "[evil"}), "/twilio/status", default_scheme="https")  # found by Hypothesis
    assert not is_valid(twilio_auth_token(), url, FORM, twilio_signer.sign(url, FORM))
