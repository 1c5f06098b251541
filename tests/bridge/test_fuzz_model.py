"""Hypothesis plays a Realtime model that sends odd events: unknown types, missing or mistyped fields, truncated JSON.

A tiny WebSocket server stands in for the model. The first connection is a healthy call's, which it
treats well (and counts every caller frame it is sent); each later one gets the example's events
after the greeting's `response.create` (once: a greeting asked for again after a reconnect is
answered well), then one good audio delta. The call must still relay that
delta, end only when the caller hangs up, and the bridge and the healthy call must not notice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bridge.realtime_connection import MAX_MODEL_MESSAGE_BYTES
from tests.bridge.fuzz_world import FRAME_BYTES, FuzzWorld, fuzz_world
from voiceline import calls

AUDIO = base64.b64encode(b"\x10" * 160).decode()
AFTER = base64.b64encode(b"\x20" * 160).decode()  # the good delta after the odd events, recognisable
KNOWN_TYPES = ["response.output_audio.delta", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
               "response.created", "response.done", "response.output_audio_transcript.done",
               "conversation.item.input_audio_transcription.completed", "error", "session.updated"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
function_calls = st.fixed_dictionaries({"type": st.just("function_call") | json_values},
                                       optional={"status": st.just("completed") | json_values,
                                                 "call_id": st.text(max_size=8) | json_values,
                                                 "name": st.sampled_from(["end_call", "get_pricing", "nope"]),
                                                 "arguments": st.text(max_size=30) | json_values})
model_events = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES) | st.text(max_size=30)},
    optional={"item_id": st.sampled_from(["i1", "i2"]) | json_values,
              "response_id": st.sampled_from(["r1", "r2"]) | json_values,
              "delta": st.just(AUDIO) | json_values, "transcript": json_values, "error": json_values,
              "response": json_values | st.fixed_dictionaries({}, optional={
                  "id": json_values, "usage": json_values, "output": st.lists(function_calls, max_size=3)})})
messages = st.one_of(
    model_events.map(json.dumps),
    json_values.map(json.dumps),
    st.tuples(model_events.map(json.dumps), st.integers(0, 60)).map(lambda cut: cut[0][:cut[1]]),  # truncated
    st.binary(max_size=40),
)


class OddModel:
    """Serves the healthy call well; the next greeting request after that gets `next_script`, used up once sent."""

    def __init__(self) -> None:
        self.next_script: list[str | bytes] = []
        self.healthy_audio_bytes = 0
        self.connections = 0

    async def handle(self, socket: ServerConnection) -> None:
        self.connections += 1
        healthy = self.connections == 1
        async for raw in socket:
            event = json.loads(raw)
            if event["type"] == "input_audio_buffer.append" and healthy:
                self.healthy_audio_bytes += len(base64.b64decode(event["audio"]))
            if event["type"] == "conversation.item.create" and event["item"].get("role") == "system" \
                    and event["item"]["content"][0]["text"].startswith("Greet"):
                script = [] if healthy else self.next_script
                if not healthy:
                    self.next_script = []  # used up: a greeting asked for again after a reconnect is answered well
                for message in script:
                    await socket.send(message)
                await socket.send(json.dumps({"type": "response.output_audio.delta", "response_id": "r_after",
                                              "item_id": "i_after", "delta": AUDIO if healthy else AFTER}))


@asynccontextmanager
async def _serving(model: OddModel) -> AsyncIterator[str]:
    async with serve(model.handle, "127.0.0.1", 0, max_size=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime"


@pytest.fixture(scope="module")
def model() -> OddModel:
    return OddModel()


@pytest.fixture(scope="module")
def world(model: OddModel) -> Iterator[FuzzWorld]:
    with fuzz_world(_serving(model)) as world:
        yield world


async def _call(world: FuzzWorld, call_sid: str, until: Callable[[], bool] | None = None) -> bool:
    """Start a call and wait for the good delta (or `until`); True when the delta reached the caller. Then hang up."""
    headers = {"X-Twilio-Signature": world.signer.sign(world.media_url)}
    async with connect(world.media_url, additional_headers=headers) as socket:
        await socket.send(world.start_frame(call_sid))
        relayed = False
        try:
            async with asyncio.timeout(10):
                while not relayed and not (until is not None and until()):
                    with contextlib.suppress(TimeoutError):
                        message = json.loads(await asyncio.wait_for(socket.recv(), 0.1))
                        relayed = message["event"] == "media" and message["media"]["payload"] == AFTER
            await socket.send(json.dumps({"event": "stop", "stop": {}}))
            await asyncio.wait_for(socket.wait_closed(), 10)
        except (ConnectionClosed, TimeoutError):
            pass
        return relayed


def test_a_model_message_over_the_size_limit_costs_its_call_a_reconnect_and_spares_the_rest(
        world: FuzzWorld, model: OddModel) -> None:
    model.next_script = [json.dumps({"type": "response.output_audio.delta", "response_id": "r1", "item_id": "i1",
                                     "delta": "A" * (MAX_MODEL_MESSAGE_BYTES + 4)})]
    call_sid = world.new_call()
    connections_before = model.connections
    # The bridge closes that socket (1009) without reading the message, reconnects, asks for the greeting
    # again (none of it was heard), and the call goes on until the caller hangs up.
    assert world.run(_call(world, call_sid)) is True
    assert model.connections == connections_before + 2
    assert world.end_reason(call_sid) == "caller_hung_up"
    assert "model_reconnected" in [event.kind for event in calls.list_events(call_sid)]
    world.healthy_and_serving()


def test_no_model_event_crashes_the_bridge_ends_the_call_or_costs_the_healthy_call_a_frame(
        world: FuzzWorld, model: OddModel) -> None:
    @settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(messages, min_size=1, max_size=8))
    def one_call(script: list[str | bytes]) -> None:
        model.next_script = script
        call_sid = world.new_call()
        assert world.run(_call(world, call_sid)) is True  # the relay went on after the odd events
        assert world.end_reason(call_sid) == "caller_hung_up"
        world.healthy_and_serving()

    one_call()
    world.run(world.end_healthy_call())
    assert world.healthy is not None and world.healthy.frames_sent > 100
    assert model.healthy_audio_bytes == world.healthy.frames_sent * FRAME_BYTES
