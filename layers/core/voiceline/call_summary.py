"""A finished call's summary by a text model: what to ask, from which transcript, and storing the answer once.

The answer (summary, intent, outcome, the agent's own fields) is stored on the Call as `summary`, with
the model that wrote it and its `source`: "openai", or "scripted stand-in" when the local stand-in
(local/scripted_text_model.py, which names itself STAND_IN_MODEL in its replies) answered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pynamodb.exceptions import UpdateError

from voiceline import settings, summary_schema
from voiceline.agents import get_agent
from voiceline.calls import get_call, list_events
from voiceline.models import Call, CallEvent
from voiceline.ownership import condition_failed
from voiceline.text_model import TextModel

OUTCOMES = ("booked", "answered", "transferred", "message", "no_outcome")
DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_API_BASE = "https://api.openai.com"
DEFAULT_TIMEOUT_S = 20.0
STAND_IN_MODEL = "scripted-stand-in"
MAX_LINE_CHARS = 600
MAX_TRANSCRIPT_CHARS = 40_000  # about 10k tokens: bounds the cost of one summary whatever the call's length
_PLACEHOLDER_PREFIX = "REPLACE_WITH_"  # the secret's value until an operator puts a key in (template.yaml)

INSTRUCTIONS = """\
You summarise a phone call between a business's AI phone agent and a caller, from its transcript.
Lines start with "caller:" or "agent:"; tool calls the agent made, transfers and hang-ups are JSON.
Answer with:
- summary: exactly two sentences: what the caller wanted, and what happened.
- intent: the caller's main reason for calling, in a few words.
- outcome: "booked" if an appointment was booked in this call; else "transferred" if the call was
  transferred to a person; else "message" if a message was taken for the business; else "answered"
  if the caller's questions were answered; else "no_outcome".
- fields: the business's own fields, only from what the call said; null where it did not say.
"""


class SummaryResult(StrEnum):
    STORED = "stored"
    ALREADY_SUMMARISED = "already_summarised"
    NOT_ENDED = "not_ended"
    NO_KEY = "no_key"
    NO_TRANSCRIPT = "no_transcript"


def answer_schema(fields_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The strict schema of the whole answer, with the agent's fields (or none) inside."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["summary", "intent", "outcome", "fields"],
        "properties": {
            "summary": {"type": "string", "description": "Two sentences."},
            "intent": {"type": "string", "description": "The caller's main reason for calling, in a few words."},
            "outcome": {"type": "string", "enum": list(OUTCOMES)},
            "fields": fields_schema or summary_schema.EMPTY,
        },
    }


def configured_text_model() -> TextModel | None:
    """The text model to ask, or None when no OpenAI key is configured (or the secret is still the placeholder)."""
    try:
        api_key = settings.secret("OPENAI_API_KEY")
    except settings.SettingsError:
        return None
    if api_key.startswith(_PLACEHOLDER_PREFIX):
        return None
    return TextModel(api_base=settings.optional("OPENAI_API_BASE", DEFAULT_API_BASE), api_key=api_key,
                     model=settings.optional("SUMMARY_MODEL", DEFAULT_MODEL),
                     timeout_s=settings.number("SUMMARY_TIMEOUT_S", DEFAULT_TIMEOUT_S))


def summarise_call(call_sid: str, text_model: TextModel | None) -> SummaryResult:
    """Ask the text model about an ended call and store its answer; never asks twice for a summarised call.

    Raises TextModelUnavailable or TextModelBadReply (voiceline.text_model) when the model gave no usable
    answer; nothing is stored then.
    """
    call = get_call(call_sid)
    if call is None or call.status != "ended":
        return SummaryResult.NOT_ENDED
    if call.summary is not None:
        return SummaryResult.ALREADY_SUMMARISED
    if text_model is None:
        return SummaryResult.NO_KEY
    events = list_events(call_sid)
    if not any(event.kind == "transcript" and event.text for event in events):
        return SummaryResult.NO_TRANSCRIPT
    agent = get_agent(call.agent_id)
    reply = text_model.answer(INSTRUCTIONS, transcript_text(call, events), "call_summary",
                              answer_schema(agent.summary_schema if agent is not None else None))
    summary = {**reply.data, "model": reply.model,
               "source": "scripted stand-in" if reply.model == STAND_IN_MODEL else "openai",
               "created_at": datetime.now(UTC).isoformat()}
    try:
        Call(call_sid).update(actions=[Call.summary.set(summary)],
                              condition=Call.call_sid.exists() & Call.summary.does_not_exist())
    except UpdateError as error:
        if condition_failed(error):  # a concurrent run stored one first
            return SummaryResult.ALREADY_SUMMARISED
        raise
    return SummaryResult.STORED


def transcript_text(call: Call, events: list[CallEvent]) -> str:
    """The call as the text model reads it: one line per thing said or done, bounded in length."""
    lines = [f"An {call.direction} call of {float(call.duration_s or 0):.0f} s; end reason: {call.end_reason}."]
    budget = MAX_TRANSCRIPT_CHARS - len(lines[0])
    rendered = [line for line in map(_line, events) if line]
    for index, line in enumerate(rendered):
        if len(line) + 1 > budget:
            lines.append(f"[{len(rendered) - index} later lines left out]")
            break
        lines.append(line)
        budget -= len(line) + 1
    return "\n".join(lines)


def _line(event: CallEvent) -> str | None:
    data = event.data or {}
    if event.kind == "transcript" and event.text:
        cut = " [cut off by the caller]" if data.get("interrupted") else ""
        return f"{event.role}: {event.text[:MAX_LINE_CHARS]}{cut}"
    if event.kind == "tool_call":
        return "tool_call: " + _bounded_json({"name": data.get("name"), "arguments": data.get("arguments"),
                                              "outcome": data.get("outcome")}, data.get("output"))
    if event.kind in ("transfer", "hang_up"):
        return f"{event.kind}: " + _bounded_json({"reason": data.get("reason"), "outcome": data.get("outcome")}, None)
    if event.kind == "dtmf" and event.text:
        return f"caller pressed: {event.text}"
    return None


def _bounded_json(head: dict[str, Any], output: Any) -> str:
    """JSON on one line; an output too long for it is cut as text, so the line stays valid JSON."""
    line = json.dumps({**head, "output": output}, ensure_ascii=False, default=str)
    if len(line) <= MAX_LINE_CHARS:
        return line
    text = json.dumps(output, ensure_ascii=False, default=str)
    room = max(0, MAX_LINE_CHARS - len(json.dumps(head, ensure_ascii=False, default=str)) - 20)
    return json.dumps({**head, "output": text[:room] + "…"}, ensure_ascii=False, default=str)
