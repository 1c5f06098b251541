"""`make demo`: start the local stack, place one simulated call, print what happened, shut down."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from local.admin_key import issue_key_in
from local.call_records import CallRecords
from local.call_simulator import CallConfig, CallReport, place_call
from local.call_simulator.sids import new_sid
from local.dashboard_browser import INSTALL_HINT, api_client, chromium_path, rollups_caught_up, save_screenshot
from local.seed import DEMO_NUMBER, DEMO_TENANT
from local.stack import ROOT, LocalStack, StackPorts
from voiceline.stats import percentile

OUT_DIR = ROOT / "out"
CALLER_NUMBER = "+15551234567"
FINALISE_TIMEOUT_S = 15.0
CALL_SUMMARY_TIMEOUT_S = 20.0  # the stream poller's round, the function, the text model
SHOWN_CHARS = 100  # of a tool's arguments or output in the live transcript


class LiveTranscript:
    """Prints the simulator's view of the call and, as they are stored, the agent's words."""

    def __init__(self, records: CallRecords) -> None:
        self.records = records
        self.started = time.monotonic()
        self.call_sid = ""
        self.tool_calls: list[dict[str, Any]] = []
        self.call_control: list[tuple[str, dict[str, Any]]] = []
        """("transfer" or "hang_up", its data), in the order the bridge recorded them."""
        self._last_seq = 0

    def line(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    async def follow(self) -> None:
        """Poll the CallEvents table (written in batches by the bridge) until cancelled."""
        while True:
            await asyncio.sleep(0.3)
            await self.print_new_events()

    async def print_new_events(self) -> None:
        for event in await asyncio.to_thread(self.records.events, self.call_sid, self._last_seq):
            self._last_seq = int(event["seq"])
            data = json.loads(event["data"]) if event.get("data") else {}
            if event["kind"] == "transcript" and event.get("role") == "agent":
                cut = " [cut off by the caller]" if data.get("interrupted") else ""
                self.line(f'agent said: "{event.get("text", "")}"{cut}')
            elif event["kind"] == "transcript":
                self.line(f'model heard: "{event.get("text", "")}"')
            elif event["kind"] == "interruption":
                self.line(f"barge-in: agent truncated at {data.get('audio_end_ms')} ms of "
                          f"{data.get('generated_ms')} ms generated")
            elif event["kind"] == "tool_call":
                self.tool_calls.append(data)
                self.line(_tool_call_line(event.get("text", ""), data))
            elif event["kind"] == "transfer":
                self.call_control.append(("transfer", data))
                self.line(f"transfer to {data.get('to')} ({data.get('reason')}) → {data.get('outcome')}")
            elif event["kind"] == "hang_up":
                self.call_control.append(("hang_up", data))
                self.line(f"hang-up ({data.get('reason')}) → {data.get('outcome')}")
            elif event["kind"] == "error":
                self.line(f"error recorded: {data.get('code')} {data.get('message')}")


def _tool_call_line(name: str, data: dict[str, Any]) -> str:
    """`tool get_pricing {"service": "leaking tap"} → ok in 182 ms: {"service": "Tap repair", …}`"""
    arguments = data.get("arguments")
    shown_arguments = arguments if isinstance(arguments, str) else _compact(arguments)  # a string: not JSON
    output = data.get("output") or {}
    if output.get("ok"):
        result = _compact(_without_nulls(output.get("output")))
    else:
        error = output.get("error") or {}
        result = f"{error.get('type')}: {error.get('message')}"
    took = f" in {float(data['duration_ms']):.0f} ms" if data.get("duration_ms") is not None else ""
    return (f"tool {data.get('name') or name} {_shorten(shown_arguments)} → {data.get('outcome')}{took}: "
            f"{_shorten(result)}")


def _without_nulls(value: Any) -> Any:
    """A tool's output minus its empty fields, so the live line has room for what it said."""
    return {key: item for key, item in value.items() if item is not None} if isinstance(value, dict) else value


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _shorten(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1].rstrip() + "…"


async def run_demo(stack: LocalStack) -> int:
    records = CallRecords(stack.dynamodb_url)
    transcript = LiveTranscript(records)
    OUT_DIR.mkdir(exist_ok=True)
    transcript.call_sid = new_sid("CA")
    config = CallConfig(gateway_url=stack.gateway_url, to_number=DEMO_NUMBER, from_number=CALLER_NUMBER,
                        call_sid=transcript.call_sid, conversation=stack.conversation,
                        twilio_api_url=stack.twilio_api_url, wav_path=OUT_DIR / "demo-call.wav",
                        on_line=transcript.line)
    transcript.line(f"calling {DEMO_NUMBER} from {CALLER_NUMBER} through {stack.gateway_url}")
    follower = asyncio.create_task(transcript.follow())
    report = await place_call(config)
    record = await records.call_once(report.call_sid, lambda call: call.get("end_reason"), FINALISE_TIMEOUT_S)
    follower.cancel()
    await transcript.print_new_events()
    _print_summary(report, record, transcript)
    await _print_call_summary(records, report.call_sid)
    screenshot_ok = await dashboard_screenshot(stack)
    return 0 if report.outcome == "completed" and record is not None and screenshot_ok else 1


async def dashboard_screenshot(stack: LocalStack) -> bool:
    """out/dashboard.png, beside the WAV, once the rollups count the call. Without Chromium the demo goes on."""
    path = OUT_DIR / "dashboard.png"
    if chromium_path() is None:
        print(f"  dashboard screenshot: not taken, Chromium is not installed ({INSTALL_HINT})")
        return True
    try:
        key = await asyncio.to_thread(issue_key_in, stack.environment(), DEMO_TENANT, "demo dashboard")
        async with api_client(stack.gateway_url, key) as api:
            await rollups_caught_up(api, calls=1)
        await save_screenshot(stack.gateway_url, key, path)
    except Exception as error:  # whatever broke, the call's own report above stands
        print(f"  dashboard screenshot FAILED: {type(error).__name__}: {error}")
        return False
    print(f"  dashboard (calls, minutes, latency, end reasons, tools, cost): {path.resolve()}")
    return True


async def _print_call_summary(records: CallRecords, call_sid: str) -> None:
    """The post-call summary, once the Calls stream has carried the ended call to functions/call_summary."""
    record = await records.call_once(call_sid, lambda call: call.get("summary"), CALL_SUMMARY_TIMEOUT_S)
    if record is None:
        print(f"  post-call summary: none within {CALL_SUMMARY_TIMEOUT_S:.0f} s (see the stream_poller and "
              "gateway logs)")
        return
    summary = json.loads(record["summary"])
    # Never pass the stand-in's text off as a model's.
    label = ("by the scripted stand-in: rules over the transcript, not a model"
             if summary.get("source") == "scripted stand-in" else f"by {summary.get('model')}")
    print(f"  post-call summary ({label}):")
    print(f"    {summary.get('summary')}")
    print(f"    intent: {summary.get('intent')}; outcome: {summary.get('outcome')}")
    print(f"    fields: {_compact(summary.get('fields'))}")


def _print_tool_summary(transcript: LiveTranscript) -> None:
    calls = transcript.tool_calls
    failed = sum(1 for call in calls if call.get("outcome") != "ok")
    durations = [float(call["duration_ms"]) for call in calls if call.get("duration_ms") is not None]
    p50, p95 = percentile(durations, 0.5), percentile(durations, 0.95)
    round_trip = f"; round trip p50 {p50:.0f} ms, p95 {p95:.0f} ms" if p50 is not None and p95 is not None else ""
    print(f"  tool calls: {len(calls)}, {failed} failed{round_trip}")


def _print_summary(report: CallReport, record: dict[str, Any] | None, transcript: LiveTranscript) -> None:
    print()
    print("── summary " + "─" * 60)
    print(report.summary())
    _print_tool_summary(transcript)
    if record is None:
        print(f"  ended by {report.ended_by}; the Call record was not finalised in time")
        return
    turns = ", ".join(f"{float(v):.0f}" for v in record.get("turn_latencies_ms") or []) or "none"
    usage = json.loads(record["usage"]) if record.get("usage") else {}
    print(f"  Call record: status {record.get('status')}, end reason {record.get('end_reason')}, "
          f"duration {float(record.get('duration_s', 0)):.1f} s, Twilio status {record.get('twilio_status')}")
    print(f"  greeting latency (stream start → first agent audio sent): "
          f"{float(record.get('greeting_latency_ms', 0)):.0f} ms")
    print(f"  turn latencies (speech stopped → first agent audio sent): {turns} ms; "
          f"p50 {record.get('turn_latency_p50_ms')} ms, p95 {record.get('turn_latency_p95_ms')} ms")
    print(f"  interruptions: {record.get('interruptions')}")
    agent_reasons = "; ".join(f"{kind.replace('_', '-')}: {data.get('reason')}"
                              for kind, data in transcript.call_control)
    print(f"  ended by {report.ended_by}, end reason {record.get('end_reason')}"
          + (f" (the agent's {agent_reasons})" if agent_reasons else ""))
    print(f"  tokens: {usage.get('input_tokens', 0)} in, {usage.get('output_tokens', 0)} out "
          f"(from response.done usage)")
    _print_cost(json.loads(record["cost"]) if record.get("cost") else None)
    if report.wav_path:
        print(f"  WAV of both legs (left caller, right agent): {Path(report.wav_path).resolve()}")


def _usd(value: float) -> str:
    """Four decimals, or six for the AWS share's fractions of a cent."""
    return f"${value:.4f}" if value >= 0.0001 or value == 0 else f"${value:.6f}"


def _print_cost(cost: dict[str, Any] | None) -> None:
    """The Call's cost breakdown (voiceline.pricing): each part's total and its items."""
    if cost is None:
        print("  cost: not on the Call record")
        return
    print(f"  cost: {_usd(cost['total'])} (USD estimate, prices {cost['prices_version']}, model {cost['model']})")
    for part in ("openai", "twilio", "aws"):
        items = ", ".join(f"{name.replace('_', ' ')} {_usd(value)}" for name, value in cost[part].items()
                          if name != "total" and value)
        print(f"    {part:<7}{_usd(cost[part]['total'])}" + (f"  ({items})" if items else ""))


def main() -> None:
    with LocalStack(ports=StackPorts.free()) as stack:
        code = asyncio.run(run_demo(stack))
    sys.exit(code)


if __name__ == "__main__":
    main()
