"""Timestamps written into the audio itself, so relay latency is measured end to end, through the bridge.

Both ends run on one machine and stamp with `time.monotonic_ns()`, CLOCK_MONOTONIC, which every
process on Linux shares. The stamp fills the first bytes of a frame (a multiple of three, so its
base64 is a prefix of the payload's); the rest is μ-law silence. Reading a stamp decodes only
that prefix, never the whole payload.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

MAGIC = b"VLB1"
# magic, call number, sequence, sent at (ns), the trigger the model answered (ns), flags
_LAYOUT = struct.Struct("<4sIIqqB4x")
STAMP_BYTES = _LAYOUT.size  # 33: 29 bytes of fields, padded to a multiple of 3
_STAMP_CHARS = STAMP_BYTES * 4 // 3
assert STAMP_BYTES % 3 == 0

CALLER_FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law, what Twilio sends
SILENCE = b"\xff"

# Caller frames
SPEECH = 1  # the caller is talking in this frame
TURN_END = 2  # the last frame of a caller turn: the model answers it
BYE = 4  # the caller is done: the model sends its last delta and stops
EARLY = 64  # sent before the greeting was heard: it waited for the call's set-up, so it is no relay latency
STEADY = 128  # sent while every call was up: no call was being set up or hung up (see run.py)
# Model deltas
FIRST = 8  # the first delta of a response: `trigger_ns` says when the model was asked for it
LAST = 16  # the last delta of a response
GOODBYE = 32  # the model's answer to BYE: every delta it will ever send has gone before it


@dataclass(frozen=True)
class Stamp:
    call: int
    sequence: int
    sent_ns: int
    trigger_ns: int
    flags: int


class StampedAudio:
    """Builds payloads of one size: a fresh stamp plus a silence tail encoded once."""

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes < STAMP_BYTES:
            raise ValueError(f"a frame must hold the {STAMP_BYTES}-byte stamp")
        self._tail = base64.b64encode(SILENCE * (frame_bytes - STAMP_BYTES)).decode()

    def payload(self, call: int, sequence: int, sent_ns: int, flags: int = 0, trigger_ns: int = 0) -> str:
        head = _LAYOUT.pack(MAGIC, call, sequence, sent_ns, trigger_ns, flags)
        return base64.b64encode(head).decode() + self._tail


def read_stamp(payload: str) -> Stamp | None:
    """The stamp at the head of a base64 payload; None for audio that carries none."""
    try:
        magic, *fields = _LAYOUT.unpack(base64.b64decode(payload[:_STAMP_CHARS]))
    except (ValueError, struct.error):
        return None
    return Stamp(*fields) if magic == MAGIC else None
