"""Regenerates the committed μ-law clips of a conversation script with espeak-ng and sox.

The clips are committed, so the stack runs without either tool; this is only for changing the
script. Usage: python -m local.audio.make_clips [--conversation local/conversations/demo.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

AUDIO_DIR = Path(__file__).resolve().parent
DEFAULT_CONVERSATION = AUDIO_DIR.parent / "conversations" / "demo.json"

# Distinct voices make a recording of the call easy to follow by ear.
VOICES = {"caller": "en-us", "agent": "en-gb"}
WORDS_PER_MINUTE = "175"
# espeak-ng pads both ends with silence; trimming it keeps barge-in offsets honest.
TRIM_SILENCE = ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"]


def spoken_parts(script: dict) -> Iterator[tuple[str, dict]]:
    """(speaker, part) for every line of the script that has a clip."""
    yield "agent", script["greeting"]
    for turn in script["turns"]:
        yield "caller", turn["caller"]
        yield "agent", turn["agent"]


def render(text: str, voice: str, target: Path) -> None:
    """Speak text into an 8 kHz mono μ-law file, the format Twilio and audio/pcmu use."""
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", WORDS_PER_MINUTE, "-w", str(wav), text], check=True)
        subprocess.run(
            ["sox", str(wav), "-t", "raw", "-e", "mu-law", "-r", "8000", "-c", "1", str(target),
             *TRIM_SILENCE],
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversation", type=Path, default=DEFAULT_CONVERSATION)
    args = parser.parse_args()
    script = json.loads(args.conversation.read_text())
    for speaker, part in spoken_parts(script):
        target = AUDIO_DIR / part["audio"]
        render(part["text"], VOICES[speaker], target)
        print(f"{target.name}: {target.stat().st_size / 8000:.2f} s")


if __name__ == "__main__":
    main()
