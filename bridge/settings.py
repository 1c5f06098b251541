"""The bridge's configuration, read once at start-up with clear errors."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.active_calls_metric import DEFAULT_SERVICE
from voiceline import settings
from voiceline.agent_options import MODELS


@dataclass(frozen=True)
class BridgeSettings:
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_api_base_url: str
    twilio_rest_timeout_s: float
    stream_token_key: bytes
    openai_realtime_url: str
    openai_api_key: str
    openai_connect_timeout_s: float
    start_timeout_s: float
    agent_cache_ttl_s: float
    event_flush_interval_s: float
    customer_lookup_budget_s: float
    # On SIGTERM, calls go on for drain_timeout_s, then get drain_wind_down_s to end gracefully:
    # both inside ECS's 120 s stopTimeout, with time left to flush (bridge/shutdown.py).
    drain_timeout_s: float = 85.0
    drain_wind_down_s: float = 15.0
    ecs_agent_uri: str | None = None  # set by ECS in every task; none locally, and then no scale-in protection
    metric_interval_s: float = 60.0
    metric_service: str = DEFAULT_SERVICE  # the ActiveCalls `service` dimension the stack's scaling policy reads
    # OpenAI faults (bridge/realtime_link.py): a dropped session is reconnected within these bounds, then restored.
    openai_reconnect_attempts: int = 4
    openai_reconnect_budget_s: float = 8.0
    openai_reconnect_backoff_s: float = 0.25  # doubled after each failed try, at most 2 s
    openai_restore_items: int = 40  # conversation items replayed into a new session; older ones are summarised
    # GA sessions end after 60 min: a call's session is renewed, while nobody speaks, before that.
    openai_session_recycle_s: float = 55 * 60.0
    openai_pool_size: int = 4  # pre-warmed connections per model (bridge/realtime_pool.py); 0 turns the pool off
    openai_pool_models: tuple[str, ...] = ("gpt-realtime",)  # the first is the guess for an agent not yet read
    openai_pool_max_age_s: float = 5 * 60.0
    tool_failures_before_disabling: int = 3  # failures in a row that take a tool away for the rest of a call
    gc_interval_s: float = 30.0  # a full garbage collection this often (bridge/garbage_collection.py)

    @classmethod
    def from_env(cls) -> BridgeSettings:
        return cls(
            twilio_account_sid=settings.require("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=settings.twilio_auth_token(),
            twilio_api_base_url=settings.optional("TWILIO_API_BASE_URL", "https://api.twilio.com"),
            twilio_rest_timeout_s=settings.number("TWILIO_REST_TIMEOUT_S", 5.0),
            stream_token_key=settings.stream_token_key(),
            openai_realtime_url=settings.optional("OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime"),
            openai_api_key=settings.secret("OPENAI_API_KEY"),
            openai_connect_timeout_s=settings.number("OPENAI_CONNECT_TIMEOUT_S", 5.0),
            start_timeout_s=settings.number("STREAM_START_TIMEOUT_S", 10.0),
            # Each call reads its agent afresh; the last copy stands in for this long when a read fails. Long,
            # since it costs nothing while reads work, and an hour-old agent beats an apology when they do not.
            agent_cache_ttl_s=settings.number("AGENT_CACHE_TTL_S", 3600.0),
            # Each write is a boto3 request, about 1.3 ms of CPU holding the GIL: every 0.5 s, two per turn per call
            # cost 100 calls a tenth of a core. Every 2 s, a turn's transcripts mostly share one.
            event_flush_interval_s=settings.number("EVENT_FLUSH_INTERVAL_S", 2.0),
            # How long the greeting may wait for lookup_customer to fill {customer_name}.
            customer_lookup_budget_s=settings.number("CUSTOMER_LOOKUP_BUDGET_S", 0.6),
            drain_timeout_s=settings.number("DRAIN_TIMEOUT_S", 85.0),
            drain_wind_down_s=settings.number("DRAIN_WIND_DOWN_S", 15.0),
            ecs_agent_uri=settings.optional("ECS_AGENT_URI", "") or None,
            metric_interval_s=settings.number("ACTIVE_CALLS_METRIC_INTERVAL_S", 60.0),
            metric_service=settings.optional("ACTIVE_CALLS_SERVICE", DEFAULT_SERVICE),
            openai_reconnect_attempts=int(settings.number("OPENAI_RECONNECT_ATTEMPTS", 4)),
            openai_reconnect_budget_s=settings.number("OPENAI_RECONNECT_BUDGET_S", 8.0),
            openai_reconnect_backoff_s=settings.number("OPENAI_RECONNECT_BACKOFF_S", 0.25),
            openai_restore_items=int(settings.number("OPENAI_RESTORE_ITEMS", 40)),
            openai_session_recycle_s=settings.number("OPENAI_SESSION_RECYCLE_S", 55 * 60.0),
            openai_pool_size=int(settings.number("OPENAI_POOL_SIZE", 4)),
            openai_pool_models=_models(settings.optional("OPENAI_POOL_MODELS", "gpt-realtime")),
            openai_pool_max_age_s=settings.number("OPENAI_POOL_MAX_AGE_S", 5 * 60.0),
            tool_failures_before_disabling=int(settings.number("TOOL_FAILURES_BEFORE_DISABLING", 3)),
            gc_interval_s=settings.number("GC_INTERVAL_S", 30.0),
        )


def _models(names: str) -> tuple[str, ...]:
    """OPENAI_POOL_MODELS: comma-separated Realtime models, each one an agent may choose."""
    models = tuple(name.strip() for name in names.split(",") if name.strip())
    unknown = [name for name in models if name not in MODELS]
    if not models or unknown:
        raise ValueError(f"OPENAI_POOL_MODELS must name one or more of {', '.join(MODELS)}; got {names!r}")
    return models
