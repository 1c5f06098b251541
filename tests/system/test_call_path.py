"""A phone call end to end: simulator → gateway → webhook → bridge → scripted model, over real sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from local.call_records import CallRecords
from local.call_simulator import CallReport, place_call
from local.seed import DEMO_AGENT, DEMO_NUMBER
from local.stack import LocalStack
from tests.conftest import TwilioSigner
from tests.system.conftest import call_config, finalised
from voiceline import stream_token

pytestmark = pytest.mark.system

CALLER = "+15551234567"


def _assert_heard_both_ways(report: CallReport, session: dict[str, Any]) -> None:
    assert report.outcome == "completed", report.error
    assert report.greeting_started_ms is not None and report.agent_audio_played_ms > 1000
    assert all(turn.reply.started_ms is not None for turn in report.turns)
    # Caller audio reaches the model byte-identical: every payload, silence included, in order.
    assert session["input_audio_bytes"] == report.sent_audio_bytes
    assert session["input_audio_sha256"] == report.sent_audio_sha256


async def test_simulated_call_is_heard_both_ways_and_recorded(
        stack: LocalStack, records: CallRecords, model_sessions: Any, wav_dir: Path) -> None:
    before = model_sessions.all()
    report = await place_call(call_config(stack, wav_dir))
    record = await finalised(records, report.call_sid)
    [session] = model_sessions.opened_since(before)
    script = stack.script
    assert script is not None

    _assert_heard_both_ways(report, session)
    assert session["session"]["audio"]["input"]["format"]["type"] == "audio/pcmu"
    assert session["session"]["audio"]["output"]["format"]["type"] == "audio/pcmu"
    assert "+15551234567" in session["session"]["instructions"]  # rendered from the agent's template
    assert not [e for e in session["errors_sent"] if e["code"] != "response_cancel_not_active"]

    # The barge-in: Twilio was told to clear, and the model to forget exactly what was not heard.
    assert report.clears_received == 1
    assert report.turns[1].barged_in and report.turns[0].reply.cut_off
    [truncate] = session["truncates"]
    assert 0 < truncate["audio_end_ms"] <= truncate["generated_ms"]
    assert truncate["audio_end_ms"] < truncate["generated_ms"]  # the cut came mid-reply

    assert report.ended_by == "agent_hung_up"
    assert record["status"] == "ended" and record["end_reason"] == "agent_hung_up"
    assert record["direction"] == "inbound" and record["agent_id"] == DEMO_AGENT
    assert record["twilio_status"] == "completed"
    # No reads at all once the bridge holds the agent the webhook's facts vouch for (an earlier call read it).
    assert 0 <= float(record["setup_reads_ms"]) < float(record["greeting_latency_ms"]) < 5000
    assert len(record["turn_latencies_ms"]) == len(script.turns) and record["turn_latency_p95_ms"] is not None
    assert record["interruptions"] == 1
    assert json.loads(record["usage"])["output_tokens"] > 0

    events = records.events(report.call_sid)
    said = [(e["role"], e["text"]) for e in events if e["kind"] == "transcript"]
    assert ("agent", "Thanks for calling Bright Plumbing, this is Ava. How can I help?") in said
    assert ("caller", script.turns[-1].caller.text) in said
    [interruption] = [e for e in events if e["kind"] == "interruption"]
    assert json.loads(interruption["data"])["audio_end_ms"] == truncate["audio_end_ms"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert report.wav_path is not None and report.wav_path.stat().st_size > 44


# A message over the 64 KiB cap is not skipped but closes its stream (1009): tests/bridge/test_fuzz_twilio.py.
async def test_malformed_frames_do_not_end_a_call_nor_disturb_another(
        stack: LocalStack, records: CallRecords, model_sessions: Any, tmp_path: Path) -> None:
    garbage: list[str | bytes] = [
        "not json", '{"event": "bogus"}', b"\x00\x01binary",
        json.dumps({"event": "media", "media": {"payload": "@@not base64@@"}}),
        json.dumps({"event": "mark"}), '{"event": "start"}',
    ]
    before = model_sessions.all()
    noisy, quiet = await asyncio.gather(
        place_call(call_config(stack, tmp_path / "noisy", malformed_frames=garbage)),
        place_call(call_config(stack, tmp_path / "quiet")))
    sessions = {s["input_audio_sha256"]: s for s in model_sessions.opened_since(before)}

    for report in (noisy, quiet):
        _assert_heard_both_ways(report, sessions[report.sent_audio_sha256])
        record = await finalised(records, report.call_sid)
        assert record["end_reason"] == "agent_hung_up"
    assert noisy.malformed_frames_sent == len(garbage)
    ended = [e for e in records.events(noisy.call_sid) if e["kind"] == "call_ended"]
    assert json.loads(ended[0]["data"])["frames_skipped"] >= 4  # not JSON, binary, not base64, a mark without name
    assert quiet.clears_received == noisy.clears_received == 1


async def test_forged_voice_webhook_gets_403_and_writes_nothing(stack: LocalStack, records: CallRecords) -> None:
    form = {"CallSid": "CA" + "f" * 32, "AccountSid": "AC" + "0" * 32, "From": CALLER, "To": DEMO_NUMBER}
    response = httpx.post(f"{stack.gateway_url}/twilio/voice", data=form,
                          headers={"X-Twilio-Signature": "forged"}, timeout=5)
    assert response.status_code == 403
    assert records.call(form["CallSid"]) is None


async def _close_code(url: str, headers: dict[str, str], first_messages: list[dict[str, Any]]) -> int | None:
    async with connect(url, additional_headers=headers, open_timeout=5) as socket:
        for message in first_messages:
            await socket.send(json.dumps(message))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 5)
        return socket.close_code


@pytest.mark.parametrize("signature", [None, "forged"])
async def test_unsigned_or_forged_handshake_is_closed_1008_before_any_model_connection(
        stack: LocalStack, model_sessions: Any, signature: str | None) -> None:
    before = model_sessions.all()
    headers = {"X-Twilio-Signature": signature} if signature else {}
    url = stack.environment()["BRIDGE_PUBLIC_URL"] + "/media-stream"
    assert await _close_code(url, headers, []) == 1008
    assert model_sessions.opened_since(before) == []


async def test_the_bridge_refuses_per_message_deflate_as_deployed(stack: LocalStack) -> None:
    """`python -m bridge` serves as the container does: a client that offers deflate (websockets does, by default)
    gets plain frames, which cost no CPU to compress."""
    async with connect(stack.environment()["BRIDGE_PUBLIC_URL"] + "/media-stream", open_timeout=5) as socket:
        assert "permessage-deflate" in socket.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in socket.response.headers
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 5)  # unsigned: closed 1008, as above


async def test_wrong_stream_token_ends_the_socket_with_no_model_connection(
        stack: LocalStack, model_sessions: Any, twilio_signer: TwilioSigner) -> None:
    url = stack.environment()["BRIDGE_PUBLIC_URL"] + "/media-stream"
    key = stack.environment()["STREAM_TOKEN_KEY"].encode()
    token_for_another_call = stream_token.issue(key, "CA" + "1" * 32, DEMO_AGENT, "tenant-demo")
    start = {"event": "start", "streamSid": "MZ" + "2" * 32, "start": {
        "streamSid": "MZ" + "2" * 32, "callSid": "CA" + "3" * 32, "accountSid": "AC" + "0" * 32,
        "customParameters": {"callSid": "CA" + "3" * 32, "agentId": DEMO_AGENT,
                             "streamToken": token_for_another_call}}}
    before = model_sessions.all()
    code = await _close_code(url, {"X-Twilio-Signature": twilio_signer.sign(url)},
                             [{"event": "connected", "protocol": "Call", "version": "1.0.0"}, start])
    assert code == 1008
    assert model_sessions.opened_since(before) == []
