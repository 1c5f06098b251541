"""CLI: place one simulated call, e.g. against `make dev`.

python -m local.call_simulator --gateway http://127.0.0.1:3000 --twilio-api http://127.0.0.1:3001 \
    --to +15550100 --wav out/call.wav
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import sys
from pathlib import Path

import httpx

from local.call_simulator.call import place_call
from local.call_simulator.config import DEFAULT_AUDIO_DIR, DEMO_CONVERSATION, CallConfig
from local.environment import DEFAULTS, GATEWAY_PORT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.call_simulator",
                                     description="Place one simulated Twilio call with a scripted caller.")
    parser.add_argument("--gateway", default=f"http://127.0.0.1:{GATEWAY_PORT}", help="base URL of the gateway")
    parser.add_argument("--twilio-api", help="base URL of the Twilio REST stand-in, so the agent can hang up "
                                             "or transfer (e.g. http://127.0.0.1:3001)")
    parser.add_argument("--to", required=True, help="the Voiceline number called (E.164)")
    parser.add_argument("--from", dest="from_number", default="+15551234567", help="the caller's number")
    parser.add_argument("--conversation", type=Path, default=DEMO_CONVERSATION)
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR, help="where the μ-law clips are")
    parser.add_argument("--wav", type=Path, help="write both legs to this stereo WAV")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="hang up after this long")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (transcript to stderr)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = CallConfig(
        gateway_url=args.gateway,
        to_number=args.to,
        from_number=args.from_number,
        conversation=args.conversation,
        audio_dir=args.audio_dir,
        account_sid=os.environ.get("TWILIO_ACCOUNT_SID", DEFAULTS["TWILIO_ACCOUNT_SID"]),
        auth_token=os.environ.get("TWILIO_AUTH_TOKEN", DEFAULTS["TWILIO_AUTH_TOKEN"]),
        wav_path=args.wav,
        twilio_api_url=args.twilio_api,
        on_line=functools.partial(print, file=sys.stderr) if args.json else print,
        max_call_seconds=args.max_seconds,
    )
    try:
        report = asyncio.run(place_call(config))
    except httpx.HTTPError as error:
        print(f"could not reach the gateway or the Twilio REST stand-in: {error!r}", file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(report), indent=2, default=str) if args.json else report.summary())
    return 0 if report.outcome in ("completed", "rejected") else 1


if __name__ == "__main__":
    sys.exit(main())
