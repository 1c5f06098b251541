"""Loading the caller's side of a conversation file."""

import json
from pathlib import Path

import pytest

from local.call_simulator.caller_script import CallerLine, CallerScript, load_caller_script
from local.call_simulator.config import DEFAULT_AUDIO_DIR, DEMO_CONVERSATION


def _conversation(directory: Path, turns: list[dict[str, object]], **extra: object) -> Path:
    path = directory / "conversation.json"
    path.write_text(json.dumps({"greeting": {"text": "Hi", "audio": "greeting.ulaw"}, "turns": turns, **extra}))
    return path


def test_caller_lines_come_with_their_clips_and_barge_in_times(tmp_path: Path) -> None:
    (tmp_path / "a.ulaw").write_bytes(b"\x10" * 320)
    (tmp_path / "b.ulaw").write_bytes(b"\x20" * 160)
    path = _conversation(tmp_path, [
        {"caller": {"text": "One", "audio": "a.ulaw"}, "agent": {"text": "x", "audio": "x.ulaw"}},
        {"caller": {"text": "Two", "audio": "b.ulaw"}, "interrupt_after_ms": 1500},
    ])
    assert load_caller_script(path, tmp_path) == CallerScript([
        CallerLine("One", b"\x10" * 320), CallerLine("Two", b"\x20" * 160, interrupt_after_ms=1500)])


def test_script_can_leave_the_hang_up_to_the_agent(tmp_path: Path) -> None:
    (tmp_path / "a.ulaw").write_bytes(b"\x10" * 160)
    turns: list[dict[str, object]] = [{"caller": {"text": "Bye", "audio": "a.ulaw"}}]
    assert load_caller_script(_conversation(tmp_path, turns, hangs_up="agent"), tmp_path).agent_hangs_up
    assert not load_caller_script(_conversation(tmp_path, turns, hangs_up="caller"), tmp_path).agent_hangs_up


def test_unknown_hangs_up_value_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r'"hangs_up" must be "caller" or "agent"'):
        load_caller_script(_conversation(tmp_path, [], hangs_up="nobody"), tmp_path)


def test_turn_without_caller_audio_is_a_clear_error(tmp_path: Path) -> None:
    path = _conversation(tmp_path, [{"caller": {"text": "One"}}])
    with pytest.raises(ValueError, match=r"turn 1 needs caller\.text and caller\.audio"):
        load_caller_script(path, tmp_path)


def test_empty_clip_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.ulaw").write_bytes(b"")
    path = _conversation(tmp_path, [{"caller": {"text": "One", "audio": "a.ulaw"}}])
    with pytest.raises(ValueError, match=r"a\.ulaw is empty"):
        load_caller_script(path, tmp_path)


def test_demo_conversation_loads_with_its_clips() -> None:
    lines = load_caller_script(DEMO_CONVERSATION, DEFAULT_AUDIO_DIR).lines
    assert lines and all(line.text and line.audio for line in lines)
