"""What a call cost: one versioned price table, overridable by environment, and the arithmetic.

The table holds list prices (USD) as published when `PRICES_VERSION` was set; they are estimates
for a dashboard, not an invoice. OpenAI's own `usage` (summed from `response.done`) is the token
count; the AWS share is an estimate from the deployed sizes. To change a price without a release,
set `VOICELINE_PRICES` to a JSON object whose keys mirror `Prices`, e.g.
`{"twilio_inbound_per_min": 0.01, "models": {"gpt-realtime": {"audio_in": 30}}}`.

Sources: openai.com/api/pricing (gpt-realtime, gpt-realtime-mini, per 1M tokens),
twilio.com/en-us/voice/pricing/us (per minute, rounded up per call; Media Streams per minute),
aws.amazon.com/fargate|lambda|dynamodb/pricing (us-east-1, arm64, on-demand).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from typing import Any

PRICES_VERSION = "2025-09-01"
PER_MILLION = 1_000_000


@dataclass(frozen=True)
class ModelPrices:
    """USD per 1M tokens, by modality; cached input is what the prompt cache already holds."""

    text_in: float
    text_cached_in: float
    text_out: float
    audio_in: float
    audio_cached_in: float
    audio_out: float


_GPT_REALTIME = ModelPrices(text_in=4.00, text_cached_in=0.40, text_out=16.00,
                            audio_in=32.00, audio_cached_in=0.40, audio_out=64.00)
_GPT_REALTIME_MINI = ModelPrices(text_in=0.60, text_cached_in=0.06, text_out=2.40,
                                 audio_in=10.00, audio_cached_in=0.30, audio_out=20.00)


@dataclass(frozen=True)
class Prices:
    """Every rate the cost of a call depends on, in USD."""

    version: str = PRICES_VERSION
    # One row per model an agent may choose (voiceline.agent_options.MODELS); a snapshot costs as its alias.
    models: dict[str, ModelPrices] = field(default_factory=lambda: {
        "gpt-realtime": _GPT_REALTIME, "gpt-realtime-2025-08-28": _GPT_REALTIME,
        "gpt-realtime-mini": _GPT_REALTIME_MINI, "gpt-realtime-mini-2025-10-06": _GPT_REALTIME_MINI,
    })
    twilio_inbound_per_min: float = 0.0085  # local number
    twilio_outbound_per_min: float = 0.0140
    twilio_media_stream_per_min: float = 0.0040
    twilio_amd_per_call: float = 0.0075
    fargate_vcpu_hour: float = 0.03238  # arm64
    fargate_gb_hour: float = 0.00356
    bridge_task_vcpu: float = 0.5  # template.yaml BridgeCpu default (512)
    bridge_task_gb: float = 1.0  # template.yaml BridgeMemory default (1024)
    calls_per_task: float = 50.0  # the autoscaling target: live calls one task carries
    lambda_per_request: float = 0.20 / PER_MILLION
    lambda_gb_second: float = 0.0000133334  # arm64
    lambda_gb: float = 0.5  # template.yaml Globals MemorySize
    lambda_avg_s: float = 0.1  # a warm webhook or tool invocation, billed per ms
    webhook_invocations_per_call: int = 2  # voice webhook + status callback
    dynamodb_write_unit: float = 0.625 / PER_MILLION  # on-demand
    call_writes: int = 4  # create, stream started, finalise, Twilio status

    def model(self, name: str) -> ModelPrices:
        """An unknown model is costed as gpt-realtime, the dearest, so a cost is never understated."""
        return self.models.get(name) or self.models["gpt-realtime"]


@cache
def _prices_from(overrides: str) -> Prices:
    base = Prices()
    if not overrides:
        return base
    try:
        changes = json.loads(overrides)
    except json.JSONDecodeError as error:
        raise ValueError(f"VOICELINE_PRICES is not valid JSON: {error}") from error
    if not isinstance(changes, dict):
        raise ValueError("VOICELINE_PRICES must be a JSON object")
    known = {f.name for f in fields(Prices)}
    unknown = set(changes) - known
    if unknown:
        raise ValueError(f"VOICELINE_PRICES has unknown keys: {sorted(unknown)}")
    models = dict(base.models)
    rate_names = {f.name for f in fields(ModelPrices)}
    for name, rates in (changes.pop("models", None) or {}).items():
        unknown_rates = set(rates) - rate_names
        if unknown_rates:
            raise ValueError(f"VOICELINE_PRICES model {name!r} has unknown keys: {sorted(unknown_rates)}")
        current = asdict(models.get(name) or models["gpt-realtime"])
        models[name] = ModelPrices(**{**current, **rates})
    return replace(base, models=models, **changes)


def current_prices(environ: Mapping[str, str] = os.environ) -> Prices:
    """The table with this environment's overrides applied (parsed once per distinct value)."""
    return _prices_from(environ.get("VOICELINE_PRICES", "").strip())


@dataclass(frozen=True)
class CallFacts:
    """What a finished call used, as the bridge counted it."""

    model: str
    direction: str  # inbound | outbound
    duration_s: float
    usage: Mapping[str, Any]  # response.done usage, summed over the call
    tool_calls: int = 0
    events_written: int = 0
    amd: bool = False


def _tokens(usage: Mapping[str, Any], side: str, modality: str) -> int:
    details = usage.get(f"{side}_token_details") or {}
    return int(details.get(f"{modality}_tokens") or 0)


def _cached(usage: Mapping[str, Any], modality: str) -> int:
    details = (usage.get("input_token_details") or {}).get("cached_tokens_details") or {}
    return int(details.get(f"{modality}_tokens") or 0)


def openai_cost(usage: Mapping[str, Any], rates: ModelPrices) -> dict[str, float]:
    """Per modality; cached tokens are part of the input count, so only the uncached rest is billed at full rate."""
    cost = {}
    for modality in ("text", "audio"):
        cached = _cached(usage, modality)
        fresh = max(_tokens(usage, "input", modality) - cached, 0)
        cost[f"{modality}_in"] = fresh * getattr(rates, f"{modality}_in") / PER_MILLION
        cost[f"{modality}_cached_in"] = cached * getattr(rates, f"{modality}_cached_in") / PER_MILLION
        cost[f"{modality}_out"] = _tokens(usage, "output", modality) * getattr(rates, f"{modality}_out") / PER_MILLION
    return cost


def call_cost(facts: CallFacts, prices: Prices | None = None) -> dict[str, Any]:
    """The breakdown stored on the Call: OpenAI by modality, Twilio, the AWS estimate, and the total."""
    prices = prices or current_prices()
    minutes_billed = math.ceil(max(facts.duration_s, 0) / 60)
    per_min = prices.twilio_outbound_per_min if facts.direction == "outbound" else prices.twilio_inbound_per_min
    twilio = {"voice": minutes_billed * per_min,
              "media_stream": minutes_billed * prices.twilio_media_stream_per_min,
              "amd": prices.twilio_amd_per_call if facts.amd else 0.0}
    task_hour = prices.bridge_task_vcpu * prices.fargate_vcpu_hour + prices.bridge_task_gb * prices.fargate_gb_hour
    invocations = prices.webhook_invocations_per_call + facts.tool_calls
    aws = {"fargate": facts.duration_s / 3600 * task_hour / prices.calls_per_task,
           "lambda": invocations * (prices.lambda_per_request
                                    + prices.lambda_avg_s * prices.lambda_gb * prices.lambda_gb_second),
           "dynamodb": (facts.events_written + prices.call_writes) * prices.dynamodb_write_unit}
    openai = openai_cost(facts.usage, prices.model(facts.model))
    parts = {"openai": openai, "twilio": twilio, "aws": aws}
    totals = {name: sum(part.values()) for name, part in parts.items()}
    return {"prices_version": prices.version, "currency": "USD", "model": facts.model,
            **{name: part | {"total": totals[name]} for name, part in parts.items()},
            "total": sum(totals.values())}
