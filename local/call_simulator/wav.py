"""A stereo recording of both legs of the call: the caller left, the agent (as played) right."""

from __future__ import annotations

import array
import sys
import wave
from pathlib import Path

from local.mulaw import BYTES_PER_SECOND, SILENCE_BYTE, decode


class StereoRecording:
    """Both channels advance together, one frame per clock tick, so they stay time-aligned."""

    def __init__(self) -> None:
        self._caller = bytearray()
        self._agent = bytearray()

    @property
    def samples(self) -> int:
        """Samples per channel so far."""
        return len(self._caller)

    def add(self, caller_frame: bytes, agent_frame: bytes) -> None:
        """One tick: what the caller sent, and the agent audio played in the same 20 ms."""
        self._caller += caller_frame
        self._agent += agent_frame.ljust(len(caller_frame), bytes([SILENCE_BYTE]))

    def write(self, path: Path) -> None:
        """16-bit PCM at 8 kHz; decoding a long call takes a moment, so run it off the event loop."""
        interleaved = array.array("h", bytes(4 * self.samples))
        interleaved[0::2] = decode(bytes(self._caller))
        interleaved[1::2] = decode(bytes(self._agent))
        if sys.byteorder == "big":  # WAV samples are little-endian
            interleaved.byteswap()
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(BYTES_PER_SECOND)
            out.writeframes(interleaved.tobytes())
