"""Energy-based voice activity detection: where the caller's speech starts and stops, in input-audio ms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FRAME_MS = 20
ONSET_MS = 60  # a click or a breath is shorter than this; a word is not
FULL_SCALE_RMS = 1000  # threshold 1.0 → RMS 1000; espeak speech sits around 1000-8000, line noise far below
SEMANTIC_SILENCE_MS = {"low": 800, "medium": 500, "auto": 500, "high": 300}


@dataclass(frozen=True)
class VadSettings:
    threshold_rms: float
    prefix_padding_ms: int
    silence_duration_ms: int

    @classmethod
    def from_turn_detection(cls, turn_detection: dict[str, Any]) -> VadSettings:
        """Settings from the session's (default-filled) `audio.input.turn_detection`."""
        if turn_detection["type"] == "semantic_vad":
            # Semantic VAD has no knobs for energy; its eagerness only sets how long a pause ends a turn.
            return cls(0.5 * FULL_SCALE_RMS, 300, SEMANTIC_SILENCE_MS[turn_detection["eagerness"]])
        return cls(turn_detection["threshold"] * FULL_SCALE_RMS, turn_detection["prefix_padding_ms"],
                   turn_detection["silence_duration_ms"])


@dataclass(frozen=True)
class SpeechEvent:
    kind: Literal["started", "stopped"]
    audio_ms: int
    """For `started`: where speech began less the prefix padding; for `stopped`: the end of the silence."""


class SpeechDetector:
    """Feeds on 20 ms frame energies; speech starts after ONSET_MS loud, stops after the silence window."""

    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings
        self.speaking = False
        self._loud_ms = 0
        self._quiet_ms = 0
        self._onset_at_ms = 0

    def push(self, frame_start_ms: int, energy: float) -> SpeechEvent | None:
        loud = energy >= self.settings.threshold_rms
        if not self.speaking:
            if not loud:
                self._loud_ms = 0
                return None
            if self._loud_ms == 0:
                self._onset_at_ms = frame_start_ms
            self._loud_ms += FRAME_MS
            if self._loud_ms < ONSET_MS:
                return None
            self.speaking, self._quiet_ms = True, 0
            return SpeechEvent("started", max(0, self._onset_at_ms - self.settings.prefix_padding_ms))
        self._quiet_ms = 0 if loud else self._quiet_ms + FRAME_MS
        if self._quiet_ms < self.settings.silence_duration_ms:
            return None
        self.speaking, self._loud_ms = False, 0
        return SpeechEvent("stopped", frame_start_ms + FRAME_MS)
