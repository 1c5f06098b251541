"""`make demo`: start the local stack, place one simulated call, print what happened, shut down."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from local.call_records import CallRecords
from local.call_simulator import CallConfig, CallReport, place_call
from local.call_simulator.sids import new_sid
from local.seed import DEMO_NUMBER
from local.stack import ROOT, LocalStack, StackPorts

OUT_DIR = ROOT / "out"
CALLER_NUMBER = "+15551234567"
FINALISE_TIMEOUT_S = 15.0


class LiveTranscript:
    """Prints the simulator's view of the call and, as they are stored, the agent's words."""

    def __init__(self, records: CallRecords) -> None:
        self.records = records
        self.started = time.monotonic()
        self.call_sid = ""
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
            elif event["kind"] == "error":
                self.line(f"error recorded: {data.get('code')} {data.get('message')}")


async def run_demo(stack: LocalStack) -> int:
    records = CallRecords(stack.dynamodb_url)
    transcript = LiveTranscript(records)
    OUT_DIR.mkdir(exist_ok=True)
    transcript.call_sid = new_sid("CA")
    config = CallConfig(gateway_url=stack.gateway_url, to_number=DEMO_NUMBER, from_number=CALLER_NUMBER,
                        call_sid=transcript.call_sid, conversation=stack.conversation,
                        wav_path=OUT_DIR / "demo-call.wav", on_line=transcript.line)
    transcript.line(f"calling {DEMO_NUMBER} from {CALLER_NUMBER} through {stack.gateway_url}")
    follower = asyncio.create_task(transcript.follow())
    report = await place_call(config)
    record = await _finalised_call(records, report.call_sid)
    follower.cancel()
    await transcript.print_new_events()
    _print_summary(report, record)
    return 0 if report.outcome == "completed" and record is not None else 1


async def _finalised_call(records: CallRecords, call_sid: str) -> dict[str, Any] | None:
    """The Call once the bridge has finalised it (it does so right after the stream ends)."""
    deadline = time.monotonic() + FINALISE_TIMEOUT_S
    while time.monotonic() < deadline:
        record = await asyncio.to_thread(records.call, call_sid)
        if record and record.get("end_reason"):
            return record
        await asyncio.sleep(0.2)
    return None


def _print_summary(report: CallReport, record: dict[str, Any] | None) -> None:
    print()
    print("── summary " + "─" * 60)
    print(report.summary())
    if record is None:
        print("  the Call record was not finalised in time")
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
    print(f"  tokens: {usage.get('input_tokens', 0)} in, {usage.get('output_tokens', 0)} out "
          f"(from response.done usage)")
    if report.wav_path:
        print(f"  WAV of both legs (left caller, right agent): {Path(report.wav_path).resolve()}")


def main() -> None:
    with LocalStack(ports=StackPorts.free()) as stack:
        code = asyncio.run(run_demo(stack))
    sys.exit(code)


if __name__ == "__main__":
    main()
