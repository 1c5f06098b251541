"""The caller's half of a scripted conversation: each line as text and μ-law audio."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CallerLine:
    text: str
    audio: bytes  # raw 8 kHz μ-law
    # Barge-in: start this many ms after the agent's previous reply started, instead of after it ends.
    interrupt_after_ms: int | None = None


def load_caller_script(conversation: Path, audio_dir: Path) -> list[CallerLine]:
    """The caller lines of a conversation file, with their clips read from audio_dir.

    Only the caller's side is read; the agent's lines belong to the scripted model.
    """
    turns = json.loads(conversation.read_text()).get("turns", [])
    lines = []
    for number, turn in enumerate(turns, start=1):
        try:
            caller = turn["caller"]
            text, clip = str(caller["text"]), str(caller["audio"])
            interrupt = turn.get("interrupt_after_ms")
        except (KeyError, TypeError):
            raise ValueError(f"{conversation}: turn {number} needs caller.text and caller.audio") from None
        audio = (audio_dir / clip).read_bytes()
        if not audio:
            raise ValueError(f"{conversation}: turn {number}: {clip} is empty")
        lines.append(CallerLine(text, audio, None if interrupt is None else int(interrupt)))
    return lines
