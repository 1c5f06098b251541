"""The floor the bridge is measured against: a Twilio↔Realtime relay that does nothing else.

On the same stack as the bridge (uvicorn on uvloop, FastAPI, websockets, the bridge's own message
templates), it connects to the model at `start`, asks for the greeting, and then passes caller frames
and model audio through: no signature or token check, no DynamoDB, no marks, no barge-in, no tools, no
reconnects. `--relay bare` in the load
bench runs it in the bridge's place, so the bridge's figures can be read against what the machine,
the harness and the libraries cost on their own.

Run by the load bench as `python -m local.load_bench.bare_relay --port N`; the model is
OPENAI_REALTIME_URL, as for the bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

import orjson
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge.realtime_protocol import append_audio
from bridge.twilio_protocol import media_message

MODEL = "gpt-realtime"
OPEN_TIMEOUT_S = 10.0
SESSION_UPDATE = orjson.dumps({"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}}}).decode()
RESPONSE_CREATE = '{"type":"response.create"}'

app = FastAPI(title="Voiceline bare relay (load bench floor)")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/media-stream")
async def media_stream(twilio: WebSocket) -> None:
    await twilio.accept()
    stream_sid = await _stream_sid_at_start(twilio)
    if stream_sid is None:
        return
    async with connect(f"{os.environ['OPENAI_REALTIME_URL']}?model={MODEL}", compression=None,
                       open_timeout=OPEN_TIMEOUT_S,
                       additional_headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}) as model:
        await model.send(SESSION_UPDATE)
        await model.send(RESPONSE_CREATE)
        to_caller = asyncio.create_task(_model_to_caller(model, twilio, stream_sid))
        try:
            await _caller_to_model(twilio, model)
        finally:
            to_caller.cancel()
            await asyncio.gather(to_caller, return_exceptions=True)


async def _stream_sid_at_start(twilio: WebSocket) -> str | None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            frame = orjson.loads(await twilio.receive_text())
            if frame.get("event") == "start":
                return str(frame["start"]["streamSid"])
    return None


async def _caller_to_model(twilio: WebSocket, model: ClientConnection) -> None:
    with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
        while True:
            frame = orjson.loads(await twilio.receive_text())
            event = frame.get("event")
            if event == "media":
                await model.send(append_audio(frame["media"]["payload"]))
            elif event == "stop":
                return


async def _model_to_caller(model: ClientConnection, twilio: WebSocket, stream_sid: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, ConnectionClosed, RuntimeError):  # RuntimeError: Twilio's side closed
        async for message in model:
            event = orjson.loads(message)
            if event.get("type") == "response.output_audio.delta":
                await twilio.send_text(media_message(stream_sid, event["delta"]))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.load_bench.bare_relay", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    uvicorn.run(app, host=arguments.host, port=arguments.port, loop="uvloop", ws="websockets-sansio",
                log_level="warning", proxy_headers=False)


if __name__ == "__main__":
    main()
