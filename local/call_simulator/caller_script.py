"""The caller's half of a scripted conversation: each line as text and μ-law audio."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    # `"opening": {"text", "audio"}` in the conversation: the person answering an outbound call speaks
    # first ("Hello?"), and the agent's greeting is the reply to that; it is lines[0].
    caller_speaks_first: bool = False


def load_caller_script(conversation: Path, audio_dir: Path) -> CallerScript:
    """The caller lines of a conversation file, with their clips read from audio_dir, and who hangs up.

    Only the caller's side is read; the agent's lines belong to the scripted model.
    """
    script = json.loads(conversation.read_text())
    hangs_up = script.get("hangs_up", "caller")
    if hangs_up not in ("caller", "agent"):
        raise ValueError(f'{conversation}: "hangs_up" must be "caller" or "agent", not {hangs_up!r}')
    lines = []
    if "opening" in script:
        lines.append(_line(conversation, "opening", script["opening"], None, audio_dir))
    for number, turn in enumerate(script.get("turns", []), start=1):
        try:
            caller, interrupt = turn["caller"], turn.get("interrupt_after_ms")
        except (KeyError, TypeError, AttributeError):
            raise ValueError(f"{conversation}: turn {number} needs caller.text and caller.audio") from None
        lines.append(_line(conversation, f"turn {number}", caller, interrupt, audio_dir))
    return CallerScript(lines, agent_hangs_up=hangs_up == "agent", caller_speaks_first="opening" in script)


def _line(conversation: Path, where: str, part: Any, interrupt: Any, audio_dir: Path) -> CallerLine:
    try:
        text, clip = str(part["text"]), str(part["audio"])
    except (KeyError, TypeError):
        fields = "text and audio" if where == "opening" else "caller.text and caller.audio"
        raise ValueError(f"{conversation}: {where} needs {fields}") from None
    audio = (audio_dir / clip).read_bytes()
    if not audio:
        raise ValueError(f"{conversation}: {where}: {clip} is empty")
    return CallerLine(text, audio, None if interrupt is None else int(interrupt))
