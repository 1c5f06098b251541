"""The three GA audio formats: measuring caller energy in each, and speaking the μ-law clips in each.

The clips are μ-law, but a client that forgets `audio/pcmu` must hear what OpenAI would send it
(24 kHz PCM), so that mistake shows up in tests instead of in production.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from local.mulaw import DECODE_TABLE

PCM_UPSAMPLE = 3  # 8 kHz clips to the 24 kHz the GA API uses for audio/pcm


def _alaw_decode(byte: int) -> int:
    byte ^= 0x55
    magnitude = (byte & 0x0F) << 4
    segment = (byte & 0x70) >> 4
    magnitude += 8 if segment == 0 else 0x108
    if segment > 1:
        magnitude <<= segment - 1
    return magnitude if byte & 0x80 else -magnitude


def _alaw_encode(sample: int) -> int:
    """One signed 16-bit sample to G.711 A-law."""
    value = sample >> 3  # A-law codes 13 bits
    mask = 0xD5 if value >= 0 else 0x55
    if value < 0:
        value = -value - 1
    segment = next((seg for seg, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
                    if value <= end), 8)
    if segment == 8:
        return 0x7F ^ mask
    mantissa = (value >> (1 if segment < 2 else segment)) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


ALAW_DECODE_TABLE: tuple[int, ...] = tuple(_alaw_decode(b) for b in range(256))
ULAW_TO_ALAW = bytes(_alaw_encode(sample) for sample in DECODE_TABLE)


def _rms_by_table(squares: Sequence[int]) -> Callable[[bytes], float]:
    def energy(frame: bytes) -> float:
        return (sum(map(squares.__getitem__, frame)) / len(frame)) ** 0.5 if frame else 0.0
    return energy


def _pcm16_samples(data: bytes) -> array.array:
    samples = array.array("h", data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":  # audio/pcm is little-endian on the wire
        samples.byteswap()
    return samples


def _pcm16_energy(frame: bytes) -> float:
    samples = _pcm16_samples(frame)
    return (sum(s * s for s in samples) / len(samples)) ** 0.5 if samples else 0.0


def _ulaw_to_pcm16(clip: bytes) -> bytes:
    samples = array.array("h", (DECODE_TABLE[b] for b in clip for _ in range(PCM_UPSAMPLE)))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


@dataclass(frozen=True)
class AudioFormat:
    bytes_per_second: int
    energy: Callable[[bytes], float]
    """Root-mean-square level of one frame, in linear 16-bit units whatever the encoding."""
    from_ulaw: Callable[[bytes], bytes]

    def ms(self, byte_count: int) -> int:
        return byte_count * 1000 // self.bytes_per_second

    def bytes_for(self, ms: int) -> int:
        return self.bytes_per_second * ms // 1000


FORMATS: dict[str, AudioFormat] = {
    "audio/pcmu": AudioFormat(8000, _rms_by_table([s * s for s in DECODE_TABLE]), bytes),
    "audio/pcma": AudioFormat(8000, _rms_by_table([s * s for s in ALAW_DECODE_TABLE]),
                              lambda clip: clip.translate(ULAW_TO_ALAW)),
    "audio/pcm": AudioFormat(24000 * 2, _pcm16_energy, _ulaw_to_pcm16),
}


def audio_format(session_format: dict) -> AudioFormat:
    """The codec for a session's `audio.input.format` or `audio.output.format`."""
    return FORMATS[session_format["type"]]
