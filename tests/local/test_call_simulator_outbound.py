"""The simulator as the callee of an outbound call: the person answering speaks first, and Twilio's webhooks say
the call is outbound (and what answering machine detection heard)."""

import json
from pathlib import Path

import pytest

from local.call_simulator.caller_script import CallerLine, load_caller_script
from local.call_simulator.config import DEFAULT_AUDIO_DIR, CallConfig
from local.call_simulator.turn_taking import SILENCE_FRAME, CallerTurnTaking
from local.call_simulator.webhooks import status_parameters, voice_parameters
from local.mulaw import FRAME_BYTES
from local.twilio_outbound import OUTBOUND_CONVERSATION

CLIP = b"\x10" * (5 * FRAME_BYTES)  # 100 ms


def test_the_callee_says_hello_at_once_and_the_greeting_is_its_reply() -> None:
    lines = [CallerLine("Hello?", CLIP), CallerLine("Yes, that's fine.", CLIP)]
    caller = CallerTurnTaking(lines, lambda line: None, quiet_ms=200, caller_speaks_first=True)
    frames = {}
    for now in range(0, 1400, 20):
        caller.hear(now, FRAME_BYTES if 300 <= now < 600 else 0)  # the greeting plays from 300 ms
        frames[now] = caller.next_frame(now)
        if caller.finished:
            break
    hello, answer = caller.turns
    assert frames[0] == CLIP[:FRAME_BYTES] and hello.caller_started_ms == 0
    assert hello.reply is caller.greeting and (caller.greeting.started_ms, caller.greeting.finished_ms) == (300, 600)
    assert hello.reply_latency_ms == 200
    assert answer.caller_started_ms == 800 and frames[780] == SILENCE_FRAME


def test_an_opening_line_comes_first_in_the_script(tmp_path: Path) -> None:
    (tmp_path / "hello.ulaw").write_bytes(b"\x10" * 160)
    (tmp_path / "one.ulaw").write_bytes(b"\x20" * 160)
    path = tmp_path / "callee.json"
    path.write_text(json.dumps({"opening": {"text": "Hello?", "audio": "hello.ulaw"},
                                "turns": [{"caller": {"text": "One", "audio": "one.ulaw"}}]}))
    script = load_caller_script(path, tmp_path)
    assert script.caller_speaks_first
    assert [line.text for line in script.lines] == ["Hello?", "One"]


def test_an_opening_without_audio_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "callee.json"
    path.write_text(json.dumps({"opening": {"text": "Hello?"}, "turns": []}))
    with pytest.raises(ValueError, match="opening needs text and audio"):
        load_caller_script(path, tmp_path)


def test_the_outbound_conversation_loads_with_its_clips() -> None:
    script = load_caller_script(OUTBOUND_CONVERSATION, DEFAULT_AUDIO_DIR)
    assert script.caller_speaks_first and not script.agent_hangs_up
    assert script.lines[0].text == "Hello?" and all(line.audio for line in script.lines)


def test_an_outbound_calls_webhooks_say_so_and_carry_answered_by() -> None:
    config = CallConfig(gateway_url="", to_number="+15557654321", from_number="+14155550100",
                        direction="outbound-api", voice_url="http://127.0.0.1:1/voice", answered_by="human")
    voice = voice_parameters("CA1", config)
    assert (voice["Direction"], voice["From"], voice["To"], voice["AnsweredBy"], voice["CallStatus"]) == (
        "outbound-api", "+14155550100", "+15557654321", "human", "in-progress")
    assert (config.voice_webhook_url, config.status_webhook_url) == ("http://127.0.0.1:1/voice", None)
    busy = CallConfig(gateway_url="", to_number="+15557654321", from_number="+14155550100", unanswered="busy")
    assert status_parameters("CA1", busy, 0)["CallStatus"] == "busy"


def test_an_inbound_call_keeps_the_gateways_paths_and_no_answered_by() -> None:
    config = CallConfig(gateway_url="http://127.0.0.1:3000/", to_number="+15550100", from_number="+15551234567")
    assert (config.voice_webhook_url, config.status_webhook_url) == ("http://127.0.0.1:3000/twilio/voice",
                                                                     "http://127.0.0.1:3000/twilio/status")
    assert "AnsweredBy" not in voice_parameters("CA1", config)
    assert voice_parameters("CA1", config)["CallStatus"] == "ringing"
