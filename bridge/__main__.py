"""Serve the bridge the way it is deployed: `python -m bridge --host 0.0.0.0 --port 8080`.

The container (bridge/Dockerfile), `make dev`, the system tests and `make bench` all start it here, so the
server they measure is the one that runs in production.
- uvloop and websockets' sans-I/O protocol are asked for by name, so a missing one fails the start instead of
  silently falling back to slower ones.
- No per-message deflate: Twilio does not offer it and μ-law barely compresses, so a client that offered it would
  only cost CPU on every frame.
- A message over MAX_FRAME_BYTES closes its stream with 1009.
- SIGTERM drains the calls first (bridge/shutdown.py, inside the task definition's StopTimeout); uvicorn's own
  graceful shutdown comes after, with no call left to wait for.
"""

from __future__ import annotations

import argparse

import uvicorn

from bridge.twilio_protocol import MAX_FRAME_BYTES

GRACEFUL_SHUTDOWN_S = 10


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    arguments = parser.parse_args()
    uvicorn.run("bridge.app:app", host=arguments.host, port=arguments.port, loop="uvloop", ws="websockets-sansio",
                ws_per_message_deflate=False, ws_max_size=MAX_FRAME_BYTES, access_log=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)


if __name__ == "__main__":
    main()
