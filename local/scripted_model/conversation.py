"""The conversation script: what the caller is scripted to say, and what the agent answers, in order.

An agent part may carry `"tool_calls": [{"name": "get_pricing", "arguments": {"service": "..."}}, ...]`:
the agent then first calls those functions, all in one response, and says its line once every output
is back.

String values in those arguments may name dates relative to the day the script is loaded:
`{today}` and `{next_business_day}` (Monday to Friday, strictly after today), as ISO `YYYY-MM-DD`,
in the time zone of the file's optional top-level `"timezone"` (IANA name, default "UTC"); e.g.
`"slot_start": "{next_business_day}T10:00"`. Bookings must be in the future, so fixed dates would rot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AUDIO_DIR = Path(__file__).resolve().parent.parent / "audio"
DEFAULT_TIMEZONE = "UTC"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str
    """JSON text, as the model streams it."""


@dataclass(frozen=True)
class Line:
    text: str
    audio: bytes
    """8 kHz μ-law."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Functions the agent calls before it says this line."""


@dataclass(frozen=True)
class Turn:
    caller: Line
    agent: Line
    interrupt_after_ms: int | None
    """The caller cuts into the previous agent line this long after it starts playing."""


@dataclass(frozen=True)
class Script:
    greeting: Line
    turns: tuple[Turn, ...]
    day: date  # what the date placeholders were filled in from ({today})


def date_placeholders(today: date) -> dict[str, str]:
    """The dates a conversation file may name in tool-call arguments, for a given day."""
    next_business_day = today + timedelta(days=1)
    while next_business_day.weekday() >= 5:  # Saturday, Sunday
        next_business_day += timedelta(days=1)
    return {"today": today.isoformat(), "next_business_day": next_business_day.isoformat()}


def _time_zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str):
        raise ValueError(f'"timezone" must be an IANA time zone name such as "Europe/London", not {name!r}')
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'"timezone" {name!r} is not a known IANA time zone name') from None


def _filled(value: Any, placeholders: Mapping[str, str]) -> Any:
    """`value` with every `{name}` in its strings replaced; an unknown name is an error in the file."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            if match[1] not in placeholders:
                known = ", ".join(f"{{{name}}}" for name in placeholders)
                raise ValueError(f"unknown placeholder {match[0]} in tool-call argument {value!r}; known: {known}")
            return placeholders[match[1]]

        return PLACEHOLDER.sub(substitute, value)
    if isinstance(value, dict):
        return {key: _filled(item, placeholders) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, placeholders) for item in value]
    return value


def _tool_call(call: dict, placeholders: Mapping[str, str]) -> ToolCall:
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
            or not isinstance(call.get("arguments", {}), dict):
        raise ValueError(f"a tool call needs a name and an arguments object, not {call!r}")
    return ToolCall(call["name"], json.dumps(_filled(call.get("arguments", {}), placeholders)))


def _line(part: dict, audio_dir: Path, placeholders: Mapping[str, str]) -> Line:
    return Line(part["text"], (audio_dir / part["audio"]).read_bytes(),
                tuple(_tool_call(call, placeholders) for call in part.get("tool_calls", [])))


def load_script(path: Path, audio_dir: Path = AUDIO_DIR, *, today: date | None = None) -> Script:
    """Read a conversation file; its `audio` names are clips in `audio_dir` (local/audio).

    Date placeholders are filled in now, from `today` (tests) or the date in the file's time zone.
    A model left running past midnight keeps the dates of the day it started: restart it for new ones.
    """
    path = Path(path)
    data = json.loads(path.read_text())
    try:
        zone = _time_zone(data.get("timezone", DEFAULT_TIMEZONE))
        day = today if today is not None else datetime.now(zone).date()
        placeholders = date_placeholders(day)
        turns = tuple(
            Turn(_line(turn["caller"], audio_dir, placeholders), _line(turn["agent"], audio_dir, placeholders),
                 turn.get("interrupt_after_ms"))
            for turn in data["turns"]
        )
        greeting = _line(data["greeting"], audio_dir, placeholders)
    except ValueError as problem:
        raise ValueError(f"{path}: {problem}") from None
    return Script(greeting, turns, day)


class ScriptCursor:
    """One session's place in the script: each committed caller turn earns the matching agent reply."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._greeted = False
        self._callers_heard = 0
        self._answered = 0

    def hear_caller(self) -> str:
        """The transcript of the caller turn just committed (empty once the script has run out)."""
        index = self._callers_heard
        self._callers_heard += 1
        return self._script.turns[index].caller.text if index < len(self._script.turns) else ""

    def replayed(self, role: str) -> None:
        """A client restoring a conversation into this session added a line: the script carries on after it."""
        if role == "user":
            self._callers_heard += 1
        elif not self._greeted:
            self._greeted = True
        else:
            self._answered = self._callers_heard

    def next_reply(self) -> Line:
        """What the agent says on the next response: the greeting, the reply owed, or a re-prompt."""
        if not self._greeted and self._callers_heard == 0:
            self._greeted = True
            return self._script.greeting
        owed = self._callers_heard - 1
        if self._answered < self._callers_heard and owed < len(self._script.turns):
            self._answered = self._callers_heard
            return self._script.turns[owed].agent
        # Unscripted turns (a tool round trip, an idle nudge) reuse the greeting's "How can I help?".
        return self._script.greeting
