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


@dataclass(frozen=True)
class CallerScript:
    lines: list[CallerLine]
    # `"hangs_up": "agent"` in the conversation: after its last line the caller stays on the line
    # until the agent ends the call, instead of hanging up once the last reply has played.
    agent_hangs_up: bool = False


def load_caller_script(conversation: Path, audio_dir: Path) -> CallerScript:
    """The caller lines of a conversation file, with their clips read from audio_dir, and who hangs up.

    Only the caller's side is read; the agent's lines belong to the scripted model.
    """
    script = json.loads(conversation.read_text())
    hangs_up = script.get("hangs_up", "caller")
    if hangs_up not in ("caller", "agent"):
        raise ValueError(f'{conversation}: "hangs_up" must be "caller" or "agent", not {hangs_up!r}')
    turns = script.get("turns", [])
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
    return CallerScript(lines, agent_hangs_up=hangs_up == "agent")
