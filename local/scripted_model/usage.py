"""Token usage for `response.done`: a rough estimate in the GA shape, so cost code has numbers to chew on."""

from __future__ import annotations

from typing import Any

INPUT_AUDIO_TOKENS_PER_S = 10
OUTPUT_AUDIO_TOKENS_PER_S = 20
CHARS_PER_TEXT_TOKEN = 4


def estimate_usage(input_text_chars: int, input_audio_ms: int,
                   output_text_chars: int, output_audio_ms: int) -> dict[str, Any]:
    """Input is the whole conversation so far (the API re-reads it every turn); output is this reply."""
    input_text = input_text_chars // CHARS_PER_TEXT_TOKEN
    input_audio = input_audio_ms * INPUT_AUDIO_TOKENS_PER_S // 1000
    output_text = output_text_chars // CHARS_PER_TEXT_TOKEN
    output_audio = output_audio_ms * OUTPUT_AUDIO_TOKENS_PER_S // 1000
    return {
        "total_tokens": input_text + input_audio + output_text + output_audio,
        "input_tokens": input_text + input_audio,
        "output_tokens": output_text + output_audio,
        "input_token_details": {"text_tokens": input_text, "audio_tokens": input_audio, "cached_tokens": 0},
        "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
    }
