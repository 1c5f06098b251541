"""Hypothesis sends a running bridge whatever Twilio never would; the bridge, and a call beside it, go on.

Random JSON, Twilio-shaped frames with wrong types, invalid base64, truncated JSON, binary frames,
messages over the size limit, media before `start`, a second `start`, `stop` anywhere: each example is
one stream on the one bridge, next to a healthy call that sends audio throughout and must lose none.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bridge.twilio_protocol import MAX_FRAME_BYTES
from local.scripted_model import ScriptedModelServer, load_script
from local.stack import DEMO_CONVERSATION
from tests.bridge.bridge_harness import SILENCE_FRAME
from tests.bridge.fuzz_world import CLEAR_END_REASONS, FRAME_BYTES, FuzzWorld, fuzz_world

START, STOP = "<valid start>", '{"event": "stop", "stop": {}}'
MEDIA = json.dumps({"event": "media", "media": {"payload": SILENCE_FRAME}})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
payloads = (st.text(max_size=300) | json_values
            | st.binary(min_size=1, max_size=240).map(lambda audio: base64.b64encode(audio).decode())
            | st.binary(min_size=1, max_size=240).map(lambda audio: base64.b64encode(audio).decode()[:-1]))
twilio_shaped = st.fixed_dictionaries(
    {"event": st.sampled_from(["media", "start", "mark", "stop", "dtmf", "connected", "clear"]) | json_values},
    optional={"media": json_values | st.fixed_dictionaries({"payload": payloads}),
              "start": json_values | st.fixed_dictionaries({"streamSid": json_values, "callSid": json_values,
                                                            "accountSid": json_values,
                                                            "customParameters": json_values}),
              "mark": json_values | st.fixed_dictionaries({"name": json_values}),
              "dtmf": json_values, "streamSid": json_values, "sequenceNumber": json_values})
messages = st.one_of(
    json_values.map(json.dumps),
    twilio_shaped.map(json.dumps),
    st.tuples(twilio_shaped.map(json.dumps), st.integers(0, 200)).map(lambda cut: cut[0][:cut[1]]),  # truncated
    st.binary(max_size=64).map(lambda data: b"\x00" + data),  # binary frames (never JSON)
    st.sampled_from([10_000, MAX_FRAME_BYTES - 100, MAX_FRAME_BYTES + 1, 300_000]).map(
        lambda size: '{"event": "media", "media": {"payload": "' + "A" * size + '"}}'),
    st.just(START), st.just(MEDIA), st.just(STOP),
)


@asynccontextmanager
async def _serving(model: ScriptedModelServer) -> AsyncIterator[str]:
    async with model:
        yield model.url


@pytest.fixture(scope="module")
def model() -> ScriptedModelServer:
    return ScriptedModelServer(load_script(DEMO_CONVERSATION), port=0)


@pytest.fixture(scope="module")
def world(model: ScriptedModelServer) -> Iterator[FuzzWorld]:
    with fuzz_world(_serving(model)) as world:
        yield world


def _ends_the_call(message: str | bytes) -> bool:
    if isinstance(message, bytes):
        return False
    if len(message.encode()) > MAX_FRAME_BYTES:
        return True
    try:
        frame = json.loads(message)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("event") == "stop"


async def _stream(world: FuzzWorld, call_sid: str, messages: list[str | bytes]) -> tuple[bool, int | None]:
    """Send the messages on one signed stream; (whether the call got going, the close code if closed)."""
    headers = {"X-Twilio-Signature": world.signer.sign(world.media_url)}
    started = False
    async with connect(world.media_url, additional_headers=headers) as socket:
        try:
            for message in messages:
                if message == START:
                    await socket.send(world.start_frame(call_sid))
                    if not started:  # the greeting's first audio: the call is up before the next frame comes
                        await asyncio.wait_for(socket.recv(), 10)
                        started = True
                else:
                    await socket.send(message)
            if started:
                await socket.send(MEDIA)  # the call goes on after what came before
                await socket.send(STOP)
                await asyncio.wait_for(socket.wait_closed(), 10)
        except ConnectionClosed:
            pass
        return started, socket.close_code


def test_a_message_over_the_limit_closes_its_stream_with_1009_and_says_why(world: FuzzWorld) -> None:
    call_sid = world.new_call()
    huge = '{"event": "media", "media": {"payload": "' + "A" * MAX_FRAME_BYTES + '"}}'
    started, close_code = world.run(_stream(world, call_sid, [START, MEDIA, huge]))
    assert (started, close_code) == (True, 1009)
    assert world.end_reason(call_sid) == "twilio_frame_too_large"
    world.healthy_and_serving()


def test_no_twilio_frame_crashes_the_bridge_or_costs_the_healthy_call_a_frame(world: FuzzWorld,
                                                                            model: ScriptedModelServer) -> None:
    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(messages, min_size=1, max_size=8))
    def one_stream(sequence: list[str | bytes]) -> None:
        call_sid = world.new_call()
        started, close_code = world.run(_stream(world, call_sid, sequence))
        world.healthy_and_serving()
        if not started:
            return
        ended_early = any(_ends_the_call(message) for message in sequence[sequence.index(START):])
        reason = world.end_reason(call_sid)
        assert reason in CLEAR_END_REASONS
        if not ended_early:
            assert (reason, close_code) == ("caller_hung_up", 1000)  # the call had gone on until the caller's stop

    one_stream()
    world.run(world.end_healthy_call())
    assert world.healthy is not None and world.healthy.frames_sent > 100
    healthy_session = model.sessions[0]  # the healthy call's: it was the first
    assert healthy_session.record.input_audio_bytes == world.healthy.frames_sent * FRAME_BYTES
