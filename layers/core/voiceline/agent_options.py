"""What an agent may be set to: the one list of allowed values and bounds (the admin API validates against it)."""

from __future__ import annotations

import re

# OpenAI Realtime (GA) voices and models.
VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse")
# Each has a row in voiceline.pricing (a test holds the two together); dated snapshots cost as their alias.
MODELS = ("gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-mini", "gpt-realtime-mini-2025-10-06")
TRANSCRIPTION_MODELS = ("gpt-4o-mini-transcribe", "gpt-4o-transcribe", "whisper-1")
SPEED_MIN, SPEED_MAX = 0.25, 1.5

# Turn detection: server_vad (threshold, prefix padding, silence) or semantic_vad (eagerness).
SERVER_VAD_THRESHOLD = (0.0, 1.0)
SERVER_VAD_PREFIX_PADDING_MS = (0, 2000)
SERVER_VAD_SILENCE_DURATION_MS = (100, 5000)
SEMANTIC_VAD_EAGERNESS = ("low", "medium", "high", "auto")
NOISE_REDUCTION = ("near_field", "far_field")

# The call's limits, in seconds. Twilio ends any call after 4 hours.
MAX_DURATION_S = (10, 14_400)
SILENCE_TIMEOUT_S = (5, 3_600)

# Cost controls: the share of the context kept when it fills up (GA session `truncation.retention_ratio`).
RETENTION_RATIO = (0.1, 1.0)
DEFAULT_RETENTION_RATIO = 0.8

# Outbound calls: what to do when Twilio's answering-machine detection hears a machine.
ANSWERING_MACHINE = ("off", "hang_up", "leave_message")

# ISO 639-1: the languages OpenAI's input transcription takes.
_ISO_639_1 = """
aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el en
eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja
jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb
nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq
sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
"""
LANGUAGES = frozenset(_ISO_639_1.split())
_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2})(?:-([A-Za-z]{2}|[0-9]{3}))?")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def language_tag(value: str) -> str:
    """`value` as a canonical language tag (`en`, `en-US`, `es-419`); ValueError when it is not one."""
    match = _LANGUAGE_TAG.fullmatch(value.strip())
    if match is None or match.group(1).lower() not in LANGUAGES:
        raise ValueError("must be an ISO 639-1 language code with an optional region, e.g. en, en-US or es-419")
    language, region = match.group(1).lower(), match.group(2)
    return f"{language}-{region.upper()}" if region else language


def transcription_language(language: str, override: str | None) -> str:
    """The language input transcription is told to expect: the override, else the agent language's own code."""
    return override or language.split("-")[0]
