"""Settings: a missing or malformed value fails with a message that names what to set."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from voiceline import settings
from voiceline.settings import SettingsError


@pytest.fixture
def secrets_manager() -> Iterator[None]:
    """Moto Secrets Manager, with every cache of a secret's value emptied before and after."""
    settings._secret_from_manager.cache_clear()
    parameters.clear_caches()
    with mock_aws():
        yield
    settings._secret_from_manager.cache_clear()
    parameters.clear_caches()


def test_require_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLS_TABLE")
    with pytest.raises(SettingsError, match="CALLS_TABLE"):
        settings.require("CALLS_TABLE")


def test_a_blank_variable_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLS_TABLE", "   ")
    with pytest.raises(SettingsError, match="CALLS_TABLE"):
        settings.require("CALLS_TABLE")


def test_require_strips_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLS_TABLE", " voiceline-calls\n")
    assert settings.require("CALLS_TABLE") == "voiceline-calls"


def test_optional_falls_back_to_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_REALTIME_URL", raising=False)
    assert settings.optional("OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime") == (
        "wss://api.openai.com/v1/realtime")
    monkeypatch.setenv("OPENAI_REALTIME_URL", "ws://127.0.0.1:8090/v1/realtime")
    assert settings.optional("OPENAI_REALTIME_URL", "unused") == "ws://127.0.0.1:8090/v1/realtime"


def test_number_parses_or_names_the_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_CACHE_TTL_S", raising=False)
    assert settings.number("AGENT_CACHE_TTL_S", 30.0) == 30.0
    monkeypatch.setenv("AGENT_CACHE_TTL_S", "2.5")
    assert settings.number("AGENT_CACHE_TTL_S", 30.0) == 2.5
    monkeypatch.setenv("AGENT_CACHE_TTL_S", "soon")
    with pytest.raises(SettingsError, match=r"AGENT_CACHE_TTL_S must be a number, got 'soon'"):
        settings.number("AGENT_CACHE_TTL_S", 30.0)


def test_a_secret_comes_from_its_variable_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-ecs-secrets")
    monkeypatch.setenv("OPENAI_API_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:unused")
    assert settings.secret("OPENAI_API_KEY") == "sk-from-ecs-secrets"


def test_a_secret_comes_from_secrets_manager_by_arn(monkeypatch: pytest.MonkeyPatch, secrets_manager: None) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="twilio-auth-token", SecretString="real-token")["ARN"]
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_SECRET_ARN", arn)
    assert settings.twilio_auth_token() == "real-token"


def test_a_missing_secret_names_both_ways_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAM_TOKEN_KEY")
    monkeypatch.delenv("STREAM_TOKEN_KEY_SECRET_ARN", raising=False)
    with pytest.raises(SettingsError, match="set STREAM_TOKEN_KEY or STREAM_TOKEN_KEY_SECRET_ARN"):
        settings.stream_token_key()


def test_stream_token_key_is_bytes_for_hmac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_TOKEN_KEY", "k" * 64)
    assert settings.stream_token_key() == b"k" * 64


def test_bridge_public_url_drops_a_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_PUBLIC_URL", "wss://bridge.example.com/")
    assert settings.bridge_public_url() == "wss://bridge.example.com"
    monkeypatch.setenv("BRIDGE_PUBLIC_URL", "ws://127.0.0.1:8080")
    assert settings.bridge_public_url() == "ws://127.0.0.1:8080"


def test_bridge_public_url_must_be_a_websocket_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_PUBLIC_URL", "https://bridge.example.com")
    with pytest.raises(SettingsError, match="BRIDGE_PUBLIC_URL must start with wss://"):
        settings.bridge_public_url()
