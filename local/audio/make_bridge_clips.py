"""Regenerates the bridge's own recorded lines (bridge/audio/*.ulaw) with espeak-ng and sox.

The bridge plays these itself when the OpenAI session cannot be recovered, so they cannot come from
the model. They are committed; this is only for changing the wording.

Usage: python -m local.audio.make_bridge_clips
"""

from __future__ import annotations

from pathlib import Path

from local.audio.make_clips import VOICES, render

BRIDGE_AUDIO_DIR = Path(__file__).resolve().parents[2] / "bridge" / "audio"
LINES = {
    "openai_down_transfer.ulaw": "I'm sorry, we're having a technical problem. Let me put you through to a colleague.",
    "openai_down_hang_up.ulaw": "I'm sorry, we're having a technical problem. Please call us back in a few minutes. "
                                "Goodbye.",
}


def main() -> None:
    BRIDGE_AUDIO_DIR.mkdir(exist_ok=True)
    for name, text in LINES.items():
        target = BRIDGE_AUDIO_DIR / name
        render(text, VOICES["agent"], target)
        print(f"{target.name}: {target.stat().st_size / 8000:.2f} s")


if __name__ == "__main__":
    main()
