"""The local stack's environment: development credentials, table names and loopback endpoints.

Every value can be overridden from the real environment, so a tunnel to a real phone works too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

DYNAMODB_PORT = 8000
GATEWAY_PORT = 3000
BRIDGE_PORT = 8080
MODEL_PORT = 8090
TWILIO_REST_PORT = 3001
TEXT_MODEL_PORT = 8091  # the scripted stand-in for the post-call summary's text model

DEFAULTS: dict[str, str] = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{DYNAMODB_PORT}",
    # The gateway also serves Lambda's Invoke API, as `sam local start-lambda` does.
    "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{GATEWAY_PORT}",
    # Tool functions are deployed as <stack>-<tool>, e.g. voiceline-get-pricing (samconfig.toml's stack name).
    "STACK_NAME": "voiceline",
    "TOOL_FUNCTION_PREFIX": "voiceline-",
    "AGENTS_TABLE": "voiceline-agents",
    "PHONE_NUMBERS_TABLE": "voiceline-phone-numbers",
    "CALLS_TABLE": "voiceline-calls",
    "CALL_EVENTS_TABLE": "voiceline-call-events",
    "TENANT_DATA_TABLE": "voiceline-tenant-data",
    "BOOKINGS_TABLE": "voiceline-bookings",
    "IDEMPOTENCY_TABLE": "voiceline-idempotency",
    "API_KEYS_TABLE": "voiceline-api-keys",
    "ROLLUPS_TABLE": "voiceline-rollups",
    # Development-only Twilio credentials: any client can sign requests the way Twilio does.
    "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
    "TWILIO_AUTH_TOKEN": "local-dev-auth-token",
    "TWILIO_API_BASE_URL": f"http://127.0.0.1:{TWILIO_REST_PORT}",
    "STREAM_TOKEN_KEY": "local-dev-stream-token-key",
    "BRIDGE_PUBLIC_URL": f"ws://127.0.0.1:{BRIDGE_PORT}",
    # No pre-warmed OpenAI connections locally: each scripted-model session then belongs to one call, which the
    # system tests rely on. Tests that exercise the pool turn it on.
    "OPENAI_POOL_SIZE": "0",
    "POWERTOOLS_SERVICE_NAME": "voiceline-local",
    "POWERTOOLS_METRICS_NAMESPACE": "VoicelineLocal",
    "POWERTOOLS_DEV": "false",
}


def local_environment(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ with the local defaults filled in where the caller has not set them."""
    env = dict(os.environ)
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    env.update(overrides or {})
    return env


@contextlib.contextmanager
def applied(values: Mapping[str, str], removed: tuple[str, ...] = ()) -> Iterator[None]:
    """os.environ with `values` set and `removed` unset, as it was again afterwards.

    A bench section's stack must not outlive it: its OPENAI_API_KEY, left behind, made the next
    stack think a real OpenAI was configured and start no scripted model.
    """
    saved = dict(os.environ)
    os.environ.update(values)
    for name in removed:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
