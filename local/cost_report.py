"""`make cost-report`: the reference call placed twice at once, naive and with Voiceline's defaults, and its cost.

Both calls run at the same time through one local stack (real bridge, scripted model, call simulator),
so the report takes one call's length (about four and a half minutes) instead of two. Time is not
compressed: usage counts audio timing, and the clock variables the naive agent re-sends change with
wall time, so the call has to run in real time to be honest.

The two agents differ only in the per-agent cost switches (voiceline.models.Agent):
- naive: `truncate_on_barge_in=False`, `retention_ratio=None` (OpenAI's auto truncation),
  `stable_instructions=False` (each variable change re-sends the whole instructions),
  `own_speech_as_text=False` (the agent's past speech stays in the context as audio);
- defaults: the Agent model's defaults.

Token counts are the scripted model's estimates (local/scripted_model/usage.py), summed by the bridge
from `response.done` exactly as it sums OpenAI's; money is voiceline.pricing at list prices.
The reference call's clips were rendered with local/audio/make_clips.py, then slowed to a phone pace
(sox `tempo -s 0.8` for the agent, 0.85 for the caller) and, for callers who are not cutting in,
given 2 s of thinking time in front.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from local.call_records import CallRecords
from local.call_simulator import CallConfig, CallReport, place_call
from local.scripted_model.usage import CONTEXT_WINDOW_TOKENS
from local.seed import DEMO_CUSTOMER_NUMBER, DEMO_INSTRUCTIONS, DEMO_TENANT, DEMO_TOOLS, DEMO_TRANSFER_NUMBER
from local.stack import ROOT, LocalStack, StackPorts

REFERENCE = ROOT / "local" / "conversations" / "cost_reference.json"
MODEL = "gpt-realtime"
# A production prompt is longer than the demo's: the house rules a business writes (about 1,000 tokens).
HOUSE_RULES = (
    " House rules: confirm the caller's name and the address before booking; read back dates and times in full; "
    "never promise a price the pricing tool did not give; for gas smells, floods or burst pipes, tell the caller "
    "to turn off the supply if it is safe and offer an emergency visit; keep each answer under three sentences "
    "unless the caller asks for detail; if the caller is upset, acknowledge it before answering; do not discuss "
    "competitors; do not give legal or insurance advice; offer to take a message when a question is outside "
    "what the tools can answer."
) * 6
CONFIGURATIONS = {
    "naive": {"agent_id": "agent-cost-naive", "number": "+15550111",
              "switches": {"truncate_on_barge_in": False, "retention_ratio": None, "stable_instructions": False,
                           "own_speech_as_text": False}},
    "defaults": {"agent_id": "agent-cost-defaults", "number": "+15550112", "switches": {}},
}
MAX_CALL_S = 480.0


def create_agents() -> None:
    """The two reference agents and their numbers; the same but for the cost switches."""
    from voiceline.models import Agent, PhoneNumber

    for configuration in CONFIGURATIONS.values():
        Agent(configuration["agent_id"], tenant_id=DEMO_TENANT, name="Ava", business_name="Bright Plumbing",
              language="en", timezone="America/New_York", instructions=DEMO_INSTRUCTIONS + HOUSE_RULES,
              greeting="Thanks for calling {business_name}, this is Ava. How can I help?", voice="marin",
              model=MODEL, turn_detection={"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                           "silence_duration_ms": 1000},
              noise_reduction="near_field", tools=list(DEMO_TOOLS), transfer_number=DEMO_TRANSFER_NUMBER,
              max_duration_s=MAX_CALL_S, silence_timeout_s=60, **configuration["switches"]).save()
        PhoneNumber(configuration["number"], agent_id=configuration["agent_id"], tenant_id=DEMO_TENANT).save()


async def finalised_call(records: CallRecords, call_sid: str, timeout_s: float = 30) -> dict[str, Any]:
    record = await records.call_once(call_sid, lambda call: call.get("end_reason") and call.get("usage"), timeout_s)
    if record is None:
        raise RuntimeError(f"call {call_sid} was not finalised within {timeout_s}s")
    return record


async def place_both(stack: LocalStack, out_dir: Path) -> dict[str, tuple[CallReport, dict[str, Any], int, int]]:
    """Both reference calls at once; per configuration its report, Call record, tool calls and events."""
    records = CallRecords(stack.dynamodb_url)

    async def one(name: str) -> tuple[CallReport, dict[str, Any], int, int]:
        report = await place_call(CallConfig(
            gateway_url=stack.gateway_url, to_number=CONFIGURATIONS[name]["number"],
            from_number=DEMO_CUSTOMER_NUMBER, conversation=REFERENCE, wav_path=out_dir / f"cost-{name}.wav",
            twilio_api_url=stack.twilio_api_url, on_line=lambda line: None, max_call_seconds=MAX_CALL_S))
        if report.outcome != "completed":
            raise RuntimeError(f"the {name} call did not complete: {report.error}")
        record = await finalised_call(records, report.call_sid)
        events = await asyncio.to_thread(records.events, report.call_sid)
        tool_calls = sum(1 for event in events if event.get("kind") == "tool_call")
        return report, record, tool_calls, len(events)

    results = await asyncio.gather(*(one(name) for name in CONFIGURATIONS))
    return dict(zip(CONFIGURATIONS, results, strict=True))


def _usage(record: dict[str, Any]) -> dict[str, Any]:
    usage = record["usage"]
    return json.loads(usage) if isinstance(usage, str) else usage


def _count(usage: dict[str, Any], *path: str) -> int:
    value: Any = usage
    for key in path:
        value = value.get(key) or {} if isinstance(value, dict) else {}
    return int(value or 0)


def cost_table(costs: dict[str, dict[str, Any]], durations: dict[str, float],
               usages: dict[str, dict[str, Any]]) -> str:
    """The report: tokens by modality, money by party, per minute, the ratio, and 1,000 call-minutes."""
    names = list(costs)
    rows: list[tuple[str, list[str]]] = [("call length", [f"{durations[n] / 60:.2f} min" for n in names])]
    for label, path in (("input text tokens", ("input_token_details", "text_tokens")),
                        ("  of which cached", ("input_token_details", "cached_tokens_details", "text_tokens")),
                        ("input audio tokens", ("input_token_details", "audio_tokens")),
                        ("  of which cached", ("input_token_details", "cached_tokens_details", "audio_tokens")),
                        ("output text tokens", ("output_token_details", "text_tokens")),
                        ("output audio tokens", ("output_token_details", "audio_tokens"))):
        rows.append((label, [f"{_count(usages[n], *path):,}" for n in names]))
    for label, part in (("OpenAI", "openai"), ("Twilio", "twilio"), ("AWS", "aws")):
        rows.append((f"{label} $", [f"{costs[n][part]['total']:.4f}" for n in names]))
    rows.append(("total $", [f"{costs[n]['total']:.4f}" for n in names]))
    per_minute = {n: costs[n]["total"] / (durations[n] / 60) for n in names}
    openai_per_minute = {n: costs[n]["openai"]["total"] / (durations[n] / 60) for n in names}
    rows.append(("OpenAI $ per minute", [f"{openai_per_minute[n]:.4f}" for n in names]))
    rows.append(("total $ per minute", [f"{per_minute[n]:.4f}" for n in names]))
    rows.append(("1,000 call-minutes $", [f"{per_minute[n] * 1000:,.2f}" for n in names]))
    width = max(len(label) for label, _ in rows)
    lines = [f"| {'':<{width}} | " + " | ".join(f"{n:>10}" for n in names) + " |",
             f"|{'-' * (width + 2)}|" + "|".join("-" * 12 for _ in names) + "|"]
    lines += [f"| {label:<{width}} | " + " | ".join(f"{v:>10}" for v in values) + " |" for label, values in rows]
    naive, defaults = per_minute["naive"], per_minute["defaults"]
    lines.append("")
    lines.append(f"defaults / naive, per call-minute: {defaults / naive:.2f} (all costs); "
                 f"{openai_per_minute['defaults'] / openai_per_minute['naive']:.2f} (OpenAI alone)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.cost_report", description=__doc__.splitlines()[0])
    parser.add_argument("--context-window", type=int, default=CONTEXT_WINDOW_TOKENS,
                        help="input tokens the scripted model's context holds (default %(default)s, gpt-realtime's "
                             "32k less 4,096 for output); lower it to see truncation within this short call")
    args = parser.parse_args()
    from voiceline.pricing import CallFacts, call_cost, current_prices

    out_dir = ROOT / "out"
    out_dir.mkdir(exist_ok=True)
    with LocalStack(ports=StackPorts.free(), conversation=REFERENCE, log_dir=out_dir / "logs",
                    extra_env={"SCRIPTED_MODEL_CONTEXT_WINDOW": str(args.context_window)}) as stack:
        os.environ.update(stack.environment())
        create_agents()
        print(f"placing the reference call twice at once ({REFERENCE.relative_to(ROOT)}); about 5 minutes...",
              flush=True)
        results = asyncio.run(place_both(stack, out_dir))
    prices = current_prices()
    costs, durations, usages = {}, {}, {}
    for name, (_, record, tool_calls, events) in results.items():
        durations[name] = float(record["duration_s"])
        usages[name] = _usage(record)
        costs[name] = call_cost(CallFacts(model=MODEL, direction="inbound", duration_s=durations[name],
                                          usage=usages[name], tool_calls=tool_calls, events_written=events), prices)
    print(f"\n{MODEL}, list prices of {prices.version}, modelled context window {args.context_window:,} tokens\n")
    print(cost_table(costs, durations, usages))


if __name__ == "__main__":
    main()
