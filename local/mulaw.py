"""G.711 μ-law helpers for the local stand-ins (audioop is gone from Python 3.13)."""

from __future__ import annotations

import array

SILENCE_BYTE = 0xFF  # μ-law encoding of 0
BYTES_PER_SECOND = 8000  # 8 kHz, one byte per sample
FRAME_BYTES = 160  # 20 ms, the frame size Twilio sends


def _decode(byte: int) -> int:
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    magnitude -= 0x84
    return -magnitude if sign else magnitude


DECODE_TABLE: tuple[int, ...] = tuple(_decode(b) for b in range(256))


def encode_sample(sample: int) -> int:
    """Encode one signed 16-bit sample (G.711, with the standard 0x84 bias)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    for exp in range(7, -1, -1):
        if magnitude & (0x4000 >> (7 - exp)):
            exponent = exp
            break
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def decode(data: bytes) -> array.array:
    """μ-law bytes to signed 16-bit samples."""
    return array.array("h", (DECODE_TABLE[b] for b in data))


def encode(samples: array.array | list[int]) -> bytes:
    return bytes(encode_sample(s) for s in samples)


def rms(data: bytes) -> float:
    """Root-mean-square energy of a μ-law chunk, in linear 16-bit units."""
    if not data:
        return 0.0
    total = sum(DECODE_TABLE[b] ** 2 for b in data)
    return (total / len(data)) ** 0.5


def ms(byte_count: int) -> int:
    """Milliseconds of audio in byte_count μ-law bytes."""
    return byte_count * 1000 // BYTES_PER_SECOND
