"""CLI: python -m local.scripted_model --host 127.0.0.1 --port 8090 --conversation local/conversations/demo.json"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from datetime import date
from pathlib import Path

from local.environment import MODEL_PORT
from local.load_bench.fast_loop import run_fast
from local.scripted_model.load_mode import STATS_ENV, serve_load
from local.scripted_model.server import serve
from local.scripted_model.usage import CONTEXT_WINDOW_TOKENS

DEFAULT_CONVERSATION = Path(__file__).resolve().parent.parent / "conversations" / "demo.json"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.scripted_model",
                                     description="Scripted stand-in for the OpenAI Realtime API (GA).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=MODEL_PORT)
    parser.add_argument("--conversation", type=Path, default=DEFAULT_CONVERSATION)
    parser.add_argument("--context-window", type=int,
                        default=int(os.environ.get("SCRIPTED_MODEL_CONTEXT_WINDOW", CONTEXT_WINDOW_TOKENS)),
                        help="input tokens the modelled context holds before old items drop out "
                             "(default $SCRIPTED_MODEL_CONTEXT_WINDOW or %(default)s; see usage.py)")
    parser.add_argument("--today", type=date.fromisoformat,
                        help="the day the script's date placeholders count from (default: today in its time zone)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per health check is noise
    load_stats = os.environ.get(STATS_ENV)  # the load benchmark's mode: no script, stamped audio
    with contextlib.suppress(KeyboardInterrupt):
        if load_stats:
            run_fast(serve_load(args.host, args.port, Path(load_stats)))
        else:
            asyncio.run(serve(args.host, args.port, args.conversation, args.context_window, args.today))


if __name__ == "__main__":
    main()
