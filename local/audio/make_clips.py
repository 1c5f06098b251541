"""Regenerates the committed μ-law clips of a conversation script with espeak-ng and sox.

The clips are committed, so the stack runs without either tool; this is only for changing the
script. Clip names come from each part's `audio`; all conversations share this directory, so give
each file its own prefix (demo_agent_1.ulaw, tools_tour_agent_1.ulaw). A name two files use must
have the same speaker and text in both (the greeting does), or nothing is rendered.

Usage: python -m local.audio.make_clips [--conversation local/conversations/demo.json] [--prune]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

AUDIO_DIR = Path(__file__).resolve().parent
CONVERSATIONS_DIR = AUDIO_DIR.parent / "conversations"
DEFAULT_CONVERSATION = CONVERSATIONS_DIR / "demo.json"

# Distinct voices make a recording of the call easy to follow by ear.
VOICES = {"caller": "en-us", "agent": "en-gb"}
WORDS_PER_MINUTE = "175"
# espeak-ng pads both ends with silence; trimming it keeps barge-in offsets honest.
TRIM_SILENCE = ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"]
# Zip codes and booking codes ("11211", "ZZZZ99"): espeak would read them as numbers or words.
_CODE = re.compile(r"\b(?=[A-Z0-9]*\d)[A-Z0-9]{4,}\b")


def spoken_parts(script: dict) -> Iterator[tuple[str, dict]]:
    """(speaker, part) for every line of the script that has a clip."""
    if "opening" in script:  # an outbound call: the person answering speaks first
        yield "caller", script["opening"]
    yield "agent", script["greeting"]
    for turn in script["turns"]:
        yield "caller", turn["caller"]
        yield "agent", turn["agent"]


def spoken_form(text: str) -> str:
    """The text as a person reads it aloud: codes character by character, the rest as written."""
    return _CODE.sub(lambda code: " ".join(code.group()), text)


def clip_owners(conversations: list[Path]) -> dict[str, set[tuple[str, str]]]:
    """Each clip name → the (speaker, text) pairs the conversations use it for."""
    owners: dict[str, set[tuple[str, str]]] = {}
    for path in conversations:
        for speaker, part in spoken_parts(json.loads(path.read_text())):
            owners.setdefault(part["audio"], set()).add((speaker, part["text"]))
    return owners


def render(text: str, voice: str, target: Path) -> None:
    """Speak text into an 8 kHz mono μ-law file, the format Twilio and audio/pcmu use."""
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", WORDS_PER_MINUTE, "-w", str(wav), spoken_form(text)],
                       check=True)
        subprocess.run(
            ["sox", str(wav), "-t", "raw", "-e", "mu-law", "-r", "8000", "-c", "1", str(target),
             *TRIM_SILENCE],
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversation", type=Path, default=DEFAULT_CONVERSATION)
    parser.add_argument("--prune", action="store_true",
                        help=f"delete clips that no conversation in {CONVERSATIONS_DIR} uses")
    args = parser.parse_args()
    conversations = sorted({*CONVERSATIONS_DIR.glob("*.json"), args.conversation.resolve()})
    owners = clip_owners(conversations)
    clashes = {name: uses for name, uses in owners.items() if len(uses) > 1}
    if clashes:
        for name, uses in sorted(clashes.items()):
            print(f"{name} is used for different lines: {sorted(uses)}", file=sys.stderr)
        sys.exit("rename the clips so each name stands for one line")
    for speaker, part in spoken_parts(json.loads(args.conversation.read_text())):
        target = AUDIO_DIR / part["audio"]
        render(part["text"], VOICES[speaker], target)
        print(f"{target.name}: {target.stat().st_size / 8000:.2f} s")
    unused = sorted(clip.name for clip in AUDIO_DIR.glob("*.ulaw") if clip.name not in owners)
    for name in unused:
        if args.prune:
            (AUDIO_DIR / name).unlink()
        print(f"{name}: {'deleted' if args.prune else 'unused (delete it with --prune)'}")


if __name__ == "__main__":
    main()
