"""Token usage for `response.done`, estimated by OpenAI's documented billing rules: an estimate, never the bill.

The real bill is what OpenAI's own `usage` says; these rules only make the local stack's numbers move
the way the real ones do, so cost controls can be measured offline. The rules, with their sources:

1. Every response re-reads the whole conversation so far as input: the instructions and tools, then
   every item still in the context; its output is what it generated (realtime-costs guide,
   "Per-Response costs": "The entire conversation is sent to the model for each Response").
2. Audio: user audio is 1 token per 100 ms (10/s), assistant audio 1 token per 50 ms (20/s), both as
   input and as output (realtime-costs guide). Output counts what was generated, heard or not.
3. Text (instructions, tool definitions, function calls and outputs, system and text messages, the
   transcript of the assistant's audio) is APPROXIMATED as characters / 4, rounded up; the real
   tokenizer and its special tokens differ a little (the guide: "may count as 12 tokens").
   A response's own `instructions`/`tools` replace the session's for that response (GA
   `response.create`). Caller audio counts as audio only: its transcript comes from the separate
   transcription model, billed apart.
4. Cached input: the input is a sequence of blocks (instructions + tools, then each item); the longest
   run of leading blocks that an earlier response of this session already read unchanged is cached
   (prompt caching matches exact prefixes; GA `usage.input_token_details.cached_tokens` is a subset
   of `input_tokens`, split by modality in `cached_tokens_details`). So a `session.update` that
   changes the instructions busts the cache for everything after them, and dropping or changing an
   early item busts it from that item on. Not modelled: cache eviction, minimum cacheable length,
   128-token granularity.
5. Truncation: an item cut by `conversation.item.truncate` keeps only its audio up to `audio_end_ms`,
   and loses its transcript text (GA reference: truncation deletes the server-side transcript so the
   model holds no text the user never heard).
6. Retention: the context holds at most `context_window` input tokens (28,224 for a 32k model with
   4,096 output tokens, as the API reference's `truncation` describes), or the instructions plus
   `truncation.token_limits.post_instructions` when set. When a response would pass it, the oldest
   items are dropped (never the instructions): with `truncation: "auto"` just enough to fit, so a
   long call drops a little on every turn and busts the cache each time; with
   `{"type": "retention_ratio", "retention_ratio": r}` down to r x the post-instruction limit, so
   truncations (and cache busts) are rare; `"disabled"` never drops. This is a MODEL of documented
   behaviour (which items the real service drops, and when, may differ); the window is configurable
   (`--context-window`) so the effect shows in a short local call.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from local.scripted_model.context import ContextItem

INPUT_AUDIO_TOKENS_PER_S = 10
OUTPUT_AUDIO_TOKENS_PER_S = 20
CHARS_PER_TEXT_TOKEN = 4
CONTEXT_WINDOW_TOKENS = 28_224


@dataclass(frozen=True)
class Tokens:
    text: int = 0
    audio: int = 0

    @property
    def total(self) -> int:
        return self.text + self.audio

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.text + other.text, self.audio + other.audio)


def text_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TEXT_TOKEN)


def audio_tokens(audio_ms: int, per_s: int) -> int:
    return audio_ms * per_s // 1000


def item_tokens(item: ContextItem) -> Tokens:
    """What one conversation item adds to every later response's input (rules 2, 3 and 5)."""
    if item.role == "assistant":
        text = 0 if item.truncated_at_ms is not None else text_tokens(len(item.text))
        return Tokens(text, audio_tokens(item.remembered_audio_ms, OUTPUT_AUDIO_TOKENS_PER_S))
    return Tokens(text_tokens(len(item.text)), audio_tokens(item.audio_ms, INPUT_AUDIO_TOKENS_PER_S))


def prompt_text(instructions: str, tools: Sequence[dict[str, Any]]) -> str:
    """The instructions and tool definitions, as the text every response starts from."""
    return instructions + (json.dumps(list(tools), sort_keys=True) if tools else "")


def output_tokens(transcript: str, audio_ms: int) -> Tokens:
    return Tokens(text_tokens(len(transcript)), audio_tokens(audio_ms, OUTPUT_AUDIO_TOKENS_PER_S))


def retention_target(truncation: Any, conversation_tokens: int, instruction_tokens: int,
                     context_window: int) -> int | None:
    """How many post-instruction tokens the conversation must shrink to before this response (rule 6).

    None when nothing is dropped: it fits, or truncation is disabled.
    """
    if truncation == "disabled":
        return None
    limit = max(context_window - instruction_tokens, 0)
    ratio = 1.0
    if isinstance(truncation, dict):
        post_instructions = (truncation.get("token_limits") or {}).get("post_instructions")
        if post_instructions is not None:
            limit = min(limit, post_instructions)
        ratio = float(truncation["retention_ratio"])
    if conversation_tokens <= limit:
        return None
    return int(limit * ratio)


@dataclass(frozen=True)
class InputUsage:
    total: Tokens
    cached: Tokens


class UsageMeter:
    """One session's prompt cache: every prefix an earlier response read (rule 4)."""

    def __init__(self) -> None:
        self._read_prefixes: set[str] = set()

    def read_input(self, prompt: str, items: Sequence[ContextItem]) -> InputUsage:
        """The input of a response about to start, and how much of it the cache already holds."""
        blocks = [("prompt:" + prompt, Tokens(text_tokens(len(prompt))))]
        for item in items:
            tokens = item_tokens(item)
            blocks.append((f"item:{item.id}:{tokens.text}:{tokens.audio}", tokens))
        chain = hashlib.sha256()
        total, cached, in_cache = Tokens(), Tokens(), True
        for signature, tokens in blocks:
            chain.update(signature.encode())
            prefix = chain.hexdigest()
            in_cache = in_cache and prefix in self._read_prefixes
            if in_cache:
                cached += tokens
            self._read_prefixes.add(prefix)
            total += tokens
        return InputUsage(total, cached)


def usage(read: InputUsage, output: Tokens) -> dict[str, Any]:
    """The GA `response.usage` object."""
    return {
        "total_tokens": read.total.total + output.total,
        "input_tokens": read.total.total,
        "output_tokens": output.total,
        "input_token_details": {
            "text_tokens": read.total.text, "audio_tokens": read.total.audio, "image_tokens": 0,
            "cached_tokens": read.cached.total,
            "cached_tokens_details": {"text_tokens": read.cached.text, "audio_tokens": read.cached.audio,
                                      "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output.text, "audio_tokens": output.audio},
    }
