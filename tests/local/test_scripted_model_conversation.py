"""Loading a conversation file: date placeholders in tool-call arguments, and the errors a bad file gets."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.scripted_model import load_script
from local.scripted_model.conversation import Script


def conversation_file(directory: Path, arguments: dict[str, Any], **top_level: Any) -> Path:
    (directory / "clip.ulaw").write_bytes(b"\xff" * 160)
    line = {"text": "One moment.", "audio": "clip.ulaw"}
    conversation = {
        **top_level,
        "greeting": line,
        "turns": [{"caller": line, "agent": {**line, "tool_calls": [{"name": "book", "arguments": arguments}]}}],
    }
    path = directory / "conversation.json"
    path.write_text(json.dumps(conversation))
    return path


def booked(script: Script) -> dict[str, Any]:
    [call] = script.turns[0].agent.tool_calls
    return json.loads(call.arguments)


@pytest.mark.parametrize("today, next_business_day", [
    (date(2026, 11, 21), "2026-11-23"),  # Saturday → Monday
    (date(2026, 11, 22), "2026-11-23"),  # Sunday → Monday
    (date(2026, 11, 20), "2026-11-23"),  # Friday → Monday
    (date(2026, 11, 23), "2026-11-24"),  # Monday → Tuesday
    (date(2026, 12, 31), "2027-01-01"),  # Thursday → Friday, over the new year
])
def test_next_business_day_is_a_weekday_strictly_after_today(tmp_path: Path, today: date,
                                                             next_business_day: str) -> None:
    path = conversation_file(tmp_path, {"slot_start": "{next_business_day}T10:00", "asked_on": "{today}"})
    assert booked(load_script(path, tmp_path, today=today)) == {
        "slot_start": f"{next_business_day}T10:00", "asked_on": today.isoformat()}


def test_placeholders_are_filled_in_nested_values_and_only_in_strings(tmp_path: Path) -> None:
    arguments = {"slots": ["{today}", {"day": "{next_business_day}"}], "count": 2, "json": '{"a": 1}',
                 "braces": "{ not a placeholder }"}
    assert booked(load_script(conversation_file(tmp_path, arguments), tmp_path, today=date(2026, 11, 20))) == {
        "slots": ["2026-11-20", {"day": "2026-11-23"}], "count": 2, "json": '{"a": 1}',
        "braces": "{ not a placeholder }"}


def test_unknown_placeholder_is_a_clear_error_at_load_time(tmp_path: Path) -> None:
    path = conversation_file(tmp_path, {"slot_start": "{tomorrow}T10:00"})
    with pytest.raises(ValueError, match=r"unknown placeholder \{tomorrow\}.*\{today\}, \{next_business_day\}"):
        load_script(path, tmp_path, today=date(2026, 11, 20))


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", 5])
def test_timezone_must_be_an_iana_name(tmp_path: Path, timezone: Any) -> None:
    path = conversation_file(tmp_path, {}, timezone=timezone)
    with pytest.raises(ValueError, match='"timezone"'):
        load_script(path, tmp_path)


def test_today_is_the_date_in_the_files_time_zone(tmp_path: Path) -> None:
    # Kiritimati (UTC+14) and Pago Pago (UTC-11) are 25 hours apart: never on the same date.
    ahead = conversation_file(tmp_path, {"day": "{today}"}, timezone="Pacific/Kiritimati")
    ahead_day = booked(load_script(ahead, tmp_path))["day"]
    behind = conversation_file(tmp_path, {"day": "{today}"}, timezone="Pacific/Pago_Pago")
    behind_day = booked(load_script(behind, tmp_path))["day"]
    assert date.fromisoformat(ahead_day) > date.fromisoformat(behind_day)


def test_timezone_defaults_to_utc(tmp_path: Path) -> None:
    path = conversation_file(tmp_path, {"day": "{today}"})
    utc_day = booked(load_script(path, tmp_path))["day"]
    explicit = booked(load_script(conversation_file(tmp_path, {"day": "{today}"}, timezone="UTC"), tmp_path))["day"]
    assert utc_day == explicit


def test_a_script_keeps_the_day_its_dates_count_from_so_a_later_load_can_match_it(tmp_path: Path) -> None:
    """The local stack loads the script, then starts the model with its day: past midnight, both still agree."""
    path = conversation_file(tmp_path, {"day": "{today}"}, timezone="Pacific/Kiritimati")
    script = load_script(path, tmp_path)
    assert booked(script)["day"] == script.day.isoformat()
    assert load_script(path, tmp_path, today=script.day + timedelta(days=1)).day == script.day + timedelta(days=1)
    assert load_script(path, tmp_path, today=script.day) == script
