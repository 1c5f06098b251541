"""The scripted model's pure parts: VAD, session schema and merging, audio formats, script order, usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.mulaw import DECODE_TABLE
from local.scripted_model.audio_format import FORMATS
from local.scripted_model.conversation import ScriptCursor, load_script
from local.scripted_model.schema import CLIENT_EVENTS, default_session, merged_session
from local.scripted_model.vad import FRAME_MS, SpeechDetector, VadSettings
from local.scripted_model.validation import ProtocolError

SCRIPT = load_script(Path(__file__).resolve().parents[2] / "local" / "conversations" / "demo.json")
LOUD, QUIET = 3000.0, 10.0


def run_detector(detector: SpeechDetector, energies: list[float]) -> list[tuple[str, int]]:
    events = []
    for index, energy in enumerate(energies):
        event = detector.push(index * FRAME_MS, energy)
        if event is not None:
            events.append((event.kind, event.audio_ms))
    return events


def test_speech_starts_after_60ms_loud_less_prefix_padding_and_stops_after_the_silence_window() -> None:
    detector = SpeechDetector(VadSettings(threshold_rms=500, prefix_padding_ms=300, silence_duration_ms=500))
    energies = [QUIET] * 50 + [LOUD] * 50 + [QUIET] * 30  # speech from 1000 ms to 2000 ms
    assert run_detector(detector, energies) == [("started", 700), ("stopped", 2500)]


def test_a_click_shorter_than_the_onset_is_not_speech() -> None:
    detector = SpeechDetector(VadSettings(500, 300, 500))
    assert run_detector(detector, [QUIET] * 10 + [LOUD] * 2 + [QUIET] * 40) == []


def test_pauses_shorter_than_the_silence_window_stay_in_one_turn() -> None:
    detector = SpeechDetector(VadSettings(500, 0, 500))
    energies = [LOUD] * 20 + [QUIET] * 20 + [LOUD] * 20 + [QUIET] * 25
    assert [kind for kind, _ in run_detector(detector, energies)] == ["started", "stopped"]


def test_every_scripted_caller_line_is_one_turn_at_default_settings() -> None:
    settings = VadSettings.from_turn_detection(default_session("sess_1", "m")["audio"]["input"]["turn_detection"])
    codec = FORMATS["audio/pcmu"]
    for turn in SCRIPT.turns:
        audio = b"\xff" * 8000 + turn.caller.audio + b"\xff" * 8000
        energies = [codec.energy(audio[i:i + 160]) for i in range(0, len(audio) - 159, 160)]
        assert [kind for kind, _ in run_detector(SpeechDetector(settings), energies)] == ["started", "stopped"]


def validate(event: dict) -> None:
    CLIENT_EVENTS[event["type"]](event, "")


def test_session_type_must_be_realtime() -> None:
    with pytest.raises(ProtocolError) as refused:
        validate({"type": "session.update", "session": {"type": "transcription"}})
    assert (refused.value.code, refused.value.param) == ("invalid_value", "session.type")


def test_wrong_json_type_is_named() -> None:
    with pytest.raises(ProtocolError) as refused:
        validate({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"speed": "fast"}}}})
    assert refused.value.code == "invalid_type"
    assert refused.value.message == ("Invalid type for 'session.audio.output.speed': "
                                     "expected a decimal, but got a string instead.")


def test_unknown_turn_detection_type_lists_the_supported_ones() -> None:
    with pytest.raises(ProtocolError) as refused:
        validate({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "push_to_talk"}}}}})
    assert refused.value.message == ("Invalid value: 'push_to_talk'. Supported values are: "
                                     "'server_vad' and 'semantic_vad'.")


def test_truncate_needs_all_its_fields() -> None:
    with pytest.raises(ProtocolError) as refused:
        validate({"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0})
    assert (refused.value.code, refused.value.param) == ("missing_required_parameter", "audio_end_ms")


def test_merge_keeps_unmentioned_audio_fields_and_fills_vad_defaults() -> None:
    current = default_session("sess_1", "gpt-realtime")
    merged = merged_session(current, {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": {"type": "server_vad", "threshold": 0.7}},
        "output": {"voice": "cedar"}}})
    assert merged["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert merged["audio"]["input"]["turn_detection"]["threshold"] == 0.7
    assert merged["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert merged["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "cedar",
                                         "speed": 1.0}
    assert current["audio"]["output"]["voice"] == "alloy"  # the old config is untouched


def test_turn_detection_null_clears_it() -> None:
    merged = merged_session(default_session("s", "m"), {"type": "realtime",
                                                         "audio": {"input": {"turn_detection": None}}})
    assert merged["audio"]["input"]["turn_detection"] is None


def test_clips_are_spoken_in_the_session_output_format() -> None:
    clip = SCRIPT.greeting.audio
    assert FORMATS["audio/pcmu"].from_ulaw(clip) == clip
    pcm = FORMATS["audio/pcm"].from_ulaw(clip)
    assert len(pcm) == len(clip) * 6  # 24 kHz, 16-bit
    assert FORMATS["audio/pcm"].ms(len(pcm)) == FORMATS["audio/pcmu"].ms(len(clip))
    alaw = FORMATS["audio/pcma"].from_ulaw(clip)
    assert len(alaw) == len(clip)


@pytest.mark.parametrize("byte", range(0, 256, 7))
def test_alaw_keeps_the_level_of_ulaw(byte: int) -> None:
    ulaw, alaw = FORMATS["audio/pcmu"], FORMATS["audio/pcma"]
    level = abs(DECODE_TABLE[byte])
    converted = alaw.energy(alaw.from_ulaw(bytes([byte])))
    assert abs(converted - level) <= max(16, level * 0.07)
    assert ulaw.energy(bytes([byte])) == level


def test_script_cursor_greets_then_answers_each_caller_turn_in_order() -> None:
    cursor = ScriptCursor(SCRIPT)
    assert cursor.next_reply() == SCRIPT.greeting
    for turn in SCRIPT.turns:
        assert cursor.hear_caller() == turn.caller.text
        assert cursor.next_reply() == turn.agent
    assert cursor.hear_caller() == ""
    assert cursor.next_reply() == SCRIPT.greeting


def test_caller_speaking_first_skips_the_greeting() -> None:
    cursor = ScriptCursor(SCRIPT)
    cursor.hear_caller()
    assert cursor.next_reply() == SCRIPT.turns[0].agent


def test_demo_script_has_a_long_interruptible_reply_and_a_barge_in() -> None:
    assert len(SCRIPT.turns) >= 2  # a reply to cut into, then the caller line that cuts into it
    assert len(SCRIPT.turns[0].agent.audio) >= 5 * 8000
    assert SCRIPT.turns[1].interrupt_after_ms == 1500
    for line in [SCRIPT.greeting, *(part for turn in SCRIPT.turns for part in (turn.caller, turn.agent))]:
        assert 1.5 * 8000 <= len(line.audio) <= 6 * 8000
