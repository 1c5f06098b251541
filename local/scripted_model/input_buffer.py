"""The input audio buffer: caller audio since the last commit, cut into 20 ms frames for the VAD."""

from __future__ import annotations

from typing import Any

from local.scripted_model.audio_format import AudioFormat, audio_format
from local.scripted_model.vad import FRAME_MS, SpeechDetector, SpeechEvent, VadSettings


class InputAudioBuffer:
    def __init__(self, session_input: dict[str, Any]) -> None:
        self.position_ms = 0
        """Input audio heard since the session opened: the clock of `audio_start_ms` and `audio_end_ms`."""
        self._uncommitted_bytes = 0
        self._partial_frame = b""
        self._format: AudioFormat = audio_format(session_input["format"])
        self.detector: SpeechDetector | None = None
        self.configure(session_input)

    def configure(self, session_input: dict[str, Any]) -> None:
        """Follow `session.audio.input`; an unchanged VAD keeps its state so a turn in progress survives."""
        new_format = audio_format(session_input["format"])
        if new_format is not self._format:
            self._format, self._partial_frame = new_format, b""
        detection = session_input["turn_detection"]
        if detection is None:
            self.detector = None
            return
        settings = VadSettings.from_turn_detection(detection)
        if self.detector is None or self.detector.settings != settings:
            self.detector = SpeechDetector(settings)

    @property
    def uncommitted_ms(self) -> int:
        return self._format.ms(self._uncommitted_bytes)

    def append(self, audio: bytes) -> list[SpeechEvent]:
        """Take caller audio; return the speech starts and stops it completes."""
        self._uncommitted_bytes += len(audio)
        data = self._partial_frame + audio
        frame_bytes = self._format.bytes_for(FRAME_MS)
        whole = len(data) - len(data) % frame_bytes
        self._partial_frame = data[whole:]
        events = []
        for offset in range(0, whole, frame_bytes):
            frame_start_ms = self.position_ms
            self.position_ms += FRAME_MS
            if self.detector is not None:
                event = self.detector.push(frame_start_ms, self._format.energy(data[offset:offset + frame_bytes]))
                if event is not None:
                    events.append(event)
        return events

    def take(self) -> None:
        """Empty the buffer, on commit or clear; the clock keeps running."""
        self._uncommitted_bytes = 0
