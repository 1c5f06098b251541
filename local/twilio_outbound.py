"""Who picks up a call the Twilio REST stand-in places, and what Twilio's answering machine detection says of them.

A callee either answers (a person, a machine, a fax, or something AMD cannot tell) and then speaks
a scripted conversation through the call simulator, or never picks up (busy, no answer, failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from local.call_simulator.config import DEFAULT_AUDIO_DIR, LOCAL_DIR, Unanswered

CONVERSATIONS_DIR = LOCAL_DIR / "conversations"
OUTBOUND_CONVERSATION = CONVERSATIONS_DIR / "outbound.json"

Answer = Literal["human", "machine", "fax", "unknown", "busy", "no-answer", "failed"]
ANSWERS: tuple[str, ...] = get_args(Answer)
MACHINE_DETECTION_MODES = ("Enable", "DetectMessageEnd")


@dataclass(frozen=True)
class Callee:
    """How the phone at the other end behaves."""

    answers: Answer = "human"
    conversation: Path = OUTBOUND_CONVERSATION
    audio_dir: Path = DEFAULT_AUDIO_DIR

    @property
    def unanswered(self) -> Unanswered | None:
        return self.answers if self.answers in get_args(Unanswered) else None


def amd_verdict(answers: Answer, machine_detection: str | None) -> str | None:
    """Twilio's AnsweredBy for a callee, or None when AMD was not asked for (or nobody answered).

    Enable reports a machine as soon as it hears one (machine_start); DetectMessageEnd waits for the
    end of its greeting and reports the beep (machine_end_beep), so a message starts after it.
    """
    if machine_detection is None or answers in ("busy", "no-answer", "failed"):
        return None
    if answers == "machine":
        return "machine_end_beep" if machine_detection == "DetectMessageEnd" else "machine_start"
    return answers


def conversation_named(name: str) -> Path:
    """A conversation file in local/conversations, by its file name (no paths: this is a network API)."""
    path = CONVERSATIONS_DIR / name
    if Path(name).name != name or path.suffix != ".json" or not path.is_file():
        raise ValueError(f"no conversation {name!r} in {CONVERSATIONS_DIR}")
    return path
