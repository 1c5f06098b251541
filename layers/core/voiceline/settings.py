"""Configuration read from the environment, failing loudly and clearly when something is missing."""

from __future__ import annotations

import os
from functools import cache


class SettingsError(RuntimeError):
    """A required setting is missing or malformed."""


def require(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required but not set")
    return value


def optional(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be a number, got {raw!r}") from None


@cache
def _secret_from_manager(arn: str) -> str:
    # Imported lazily: only deployed Lambdas read Secrets Manager; the bridge gets ECS Secrets as env.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=300)
    return value if isinstance(value, str) else value.decode()


def secret(name: str) -> str:
    """A secret from env NAME (local, ECS Secrets) or from Secrets Manager via NAME_SECRET_ARN (Lambda)."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    arn = os.environ.get(f"{name}_SECRET_ARN", "").strip()
    if arn:
        return _secret_from_manager(arn)
    raise SettingsError(f"secret {name} is not configured: set {name} or {name}_SECRET_ARN")


def twilio_auth_token() -> str:
    return secret("TWILIO_AUTH_TOKEN")


def stream_token_key() -> bytes:
    return secret("STREAM_TOKEN_KEY").encode()


def bridge_public_url() -> str:
    """Base URL Twilio opens the media stream on, e.g. wss://bridge.example.com (no path, no query)."""
    url = require("BRIDGE_PUBLIC_URL").rstrip("/")
    if not url.startswith(("wss://", "ws://")):
        raise SettingsError(f"BRIDGE_PUBLIC_URL must start with wss:// (or ws:// locally), got {url!r}")
    return url
