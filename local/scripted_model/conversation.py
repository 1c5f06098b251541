"""The conversation script: what the caller is scripted to say, and what the agent answers, in order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

AUDIO_DIR = Path(__file__).resolve().parent.parent / "audio"


@dataclass(frozen=True)
class Line:
    text: str
    audio: bytes
    """8 kHz μ-law."""


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


def _line(part: dict, audio_dir: Path) -> Line:
    return Line(part["text"], (audio_dir / part["audio"]).read_bytes())


def load_script(path: Path, audio_dir: Path = AUDIO_DIR) -> Script:
    """Read a conversation file; its `audio` names are clips in `audio_dir` (local/audio)."""
    data = json.loads(Path(path).read_text())
    turns = tuple(
        Turn(_line(turn["caller"], audio_dir), _line(turn["agent"], audio_dir), turn.get("interrupt_after_ms"))
        for turn in data["turns"]
    )
    return Script(_line(data["greeting"], audio_dir), turns)


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
