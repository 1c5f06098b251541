"""The agent as the admin API reads and writes it: every setting validated field by field.

The allowed values live in voiceline.agent_options, the known template variables in voiceline.instructions,
and the tools in voiceline.tools.REGISTRY; this module only turns them into pydantic fields.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
)

from voiceline import agent_options as options
from voiceline.agent_options import DEFAULT_RETENTION_RATIO
from voiceline.agents import SETTINGS
from voiceline.instructions import CALL_VARIABLES, is_variable_name, template_problems
from voiceline.summary_schema import MAX_CHARS as SUMMARY_SCHEMA_MAX_CHARS
from voiceline.summary_schema import schema_problems as summary_schema_problems
from voiceline.tools import REGISTRY


def _text(value: str) -> str:
    """DynamoDB stores UTF-8: a lone surrogate (valid in JSON's \\u escapes) could never be written."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone, e.g. America/New_York or Europe/London") from None
    return value


def _variable_name(value: str) -> str:
    if not is_variable_name(value):
        raise ValueError("must be lower-case letters, digits and underscores, starting with a letter")
    return value


def _e164(value: str) -> str:
    if not options.E164.fullmatch(value):
        raise ValueError("must be an E.164 phone number, e.g. +14155550123")
    return value


def _rounded(digits: int) -> Callable[[float], float]:
    """DynamoDB numbers stop at 1e-130: a value like 5e-324 would fail the write, so settings keep a sane precision."""
    return lambda value: round(value, digits)


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted({value for value in values if values.count(value) > 1})
    if duplicates:
        raise ValueError(f"lists {', '.join(duplicates)} more than once")
    return values


def _documented_pattern(pattern: str) -> dict[str, Any]:
    """A pattern for the OpenAPI spec (clients and generators see it); the validator gives the clearer message."""
    return {"pattern": pattern}


Text = Annotated[str, AfterValidator(_text)]
VariableName = Annotated[str, Field(max_length=64, json_schema_extra=_documented_pattern(r"^[a-z][a-z0-9_]{0,63}$")),
                         AfterValidator(_variable_name)]
PhoneNumber = Annotated[str, Field(max_length=16, examples=["+14155550123"],
                                   json_schema_extra=_documented_pattern(r"^\+[1-9][0-9]{6,14}$")),
                        AfterValidator(_e164)]
ToolName = Literal[tuple(REGISTRY)]  # type: ignore[valid-type]


class ServerVad(BaseModel):
    """Turn detection by loudness: speech starts above `threshold` and ends after `silence_duration_ms`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    type: Literal["server_vad"]
    threshold: Annotated[float, AfterValidator(_rounded(3))] = Field(
        0.5, ge=options.SERVER_VAD_THRESHOLD[0], le=options.SERVER_VAD_THRESHOLD[1], description="Rounded to 0.001.")
    prefix_padding_ms: int = Field(300, ge=options.SERVER_VAD_PREFIX_PADDING_MS[0],
                                   le=options.SERVER_VAD_PREFIX_PADDING_MS[1])
    silence_duration_ms: int = Field(500, ge=options.SERVER_VAD_SILENCE_DURATION_MS[0],
                                     le=options.SERVER_VAD_SILENCE_DURATION_MS[1])


class SemanticVad(BaseModel):
    """Turn detection by meaning: the model judges when the caller has finished; `eagerness` sets how soon."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["semantic_vad"]
    eagerness: Literal[options.SEMANTIC_VAD_EAGERNESS] = "auto"  # type: ignore[valid-type]


TurnDetection = Annotated[ServerVad | SemanticVad, Field(discriminator="type")]


class AgentSettings(BaseModel):
    """Everything a business sets on an agent. Field order matters: later checks read earlier fields."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: Text = Field(min_length=1, max_length=100, examples=["Ava"])
    business_name: Text = Field("", max_length=200, description="Fills {business_name} in the templates.")
    language: str = Field("en", max_length=10, description="The agent's language: ISO 639-1 with an optional "
                                                           "region, e.g. en, en-US or es-419.",
                          json_schema_extra=_documented_pattern(r"^[A-Za-z]{2}(-([A-Za-z]{2}|[0-9]{3}))?$"))
    timezone: str = Field("UTC", max_length=64, description="IANA time zone for {local_date} and {local_time}.")
    template_variables: list[VariableName] = Field(
        default_factory=list, max_length=20,
        description="Extra {variables} the templates may use, filled from an outbound call's variables. "
                    f"Every call fills in {', '.join(sorted(CALL_VARIABLES))}.")
    instructions: Text = Field(min_length=1, max_length=20_000,
                               description="The system prompt, a template: {variable} placeholders must be known; "
                                           "{{ and }} are literal braces.")
    greeting: Text = Field(min_length=1, max_length=1_000, description="What the agent says first, a template.")
    voice: Literal[options.VOICES] = "marin"  # type: ignore[valid-type]
    speed: Annotated[float, AfterValidator(_rounded(2))] = Field(1.0, ge=options.SPEED_MIN, le=options.SPEED_MAX,
                                                                 description="Rounded to 0.01.")
    model: Literal[options.MODELS] = "gpt-realtime"  # type: ignore[valid-type]
    turn_detection: TurnDetection = Field(default_factory=lambda: ServerVad(type="server_vad"))
    noise_reduction: Literal[options.NOISE_REDUCTION] | None = None  # type: ignore[valid-type]
    transcription_model: Literal[options.TRANSCRIPTION_MODELS] = "gpt-4o-mini-transcribe"  # type: ignore[valid-type]
    transcription_language: str | None = Field(
        None, max_length=2, description="ISO 639-1 code of what callers speak; null follows `language`.",
        json_schema_extra=_documented_pattern(r"^[A-Za-z]{2}$"))
    tools: Annotated[list[ToolName], AfterValidator(_unique)] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=len(REGISTRY), description="Tools from the registry the agent may use.")
    transfer_number: PhoneNumber | None = Field(None, description="Where transfer_call dials (E.164).")
    max_duration_s: int = Field(600, ge=options.MAX_DURATION_S[0], le=options.MAX_DURATION_S[1])
    silence_timeout_s: int = Field(30, ge=options.SILENCE_TIMEOUT_S[0], le=options.SILENCE_TIMEOUT_S[1])
    enabled: bool = True
    wait_for_callee: bool = Field(False, description="On an outbound call, let the callee speak first.")
    answering_machine: Literal[options.ANSWERING_MACHINE] = Field(  # type: ignore[valid-type]
        "off", description="When an outbound call reaches a machine: treat it as a person (off), hang up, or "
                           "leave voicemail_message.")
    voicemail_message: Text | None = Field(None, min_length=1, max_length=1_000, validate_default=True,
                                           description="Required when answering_machine is leave_message.")
    retention_ratio: Annotated[float, AfterValidator(_rounded(2))] | None = Field(
        options.DEFAULT_RETENTION_RATIO, ge=options.RETENTION_RATIO[0], le=options.RETENTION_RATIO[1],
        description="When the model's context fills, keep this share of it (fewer, larger truncations keep the "
                    "prompt cache hitting); null leaves OpenAI's auto truncation. Rounded to 0.01.")
    truncate_on_barge_in: bool = Field(True, description="When the caller cuts in, the model forgets the agent "
                                                         "audio that was never heard (it is billed again otherwise).")
    stable_instructions: bool = Field(True, description="Variables that change mid-call (the local time) reach "
                                                        "the model as conversation messages, so the cached "
                                                        "instructions prefix stays; false re-sends the instructions.")
    own_speech_as_text: bool = Field(True, description="Once the caller has heard a reply (or cut it off), the "
                                                       "model keeps the words heard as text instead of the audio, "
                                                       "which every later turn re-reads at about 10 times the cost.")
    summary_schema: dict[str, Any] | None = Field(
        None, description="The structured fields each call's post-call summary fills in: a JSON Schema object for "
                          "strict structured outputs (every object closed with additionalProperties false and all "
                          "its properties required; an optional one is nullable), at most "
                          f"{SUMMARY_SCHEMA_MAX_CHARS} characters.",
        examples=[{"type": "object", "additionalProperties": False, "required": ["service"],
                   "properties": {"service": {"type": ["string", "null"]}}}])

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return options.language_tag(value)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _timezone(value)

    @field_validator("template_variables")
    @classmethod
    def _template_variables(cls, value: list[str]) -> list[str]:
        taken = sorted(set(value) & CALL_VARIABLES)
        if taken:
            raise ValueError(f"{', '.join(taken)} every call fills in already")
        return _unique(value)

    @field_validator("instructions", "greeting")
    @classmethod
    def _template(cls, value: str, info: ValidationInfo) -> str:
        problems = template_problems(value, CALL_VARIABLES | set(info.data.get("template_variables") or ()))
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("transcription_language")
    @classmethod
    def _transcription_language(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in options.LANGUAGES:
            raise ValueError("must be an ISO 639-1 language code, e.g. en, es or de")
        return None if value is None else value.lower()

    @field_validator("voicemail_message")
    @classmethod
    def _voicemail(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("answering_machine") == "leave_message":
            raise ValueError("is required when answering_machine is leave_message")
        return value

    @field_validator("summary_schema")
    @classmethod
    def _summary_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problems = [] if value is None else summary_schema_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def stored(self) -> dict[str, Any]:
        """The settings as the Agent model stores them."""
        return self.model_dump()


class AgentReplace(AgentSettings):
    """A whole new set of settings, for the version the client read."""

    version: int = Field(ge=1, le=2**53, description="The version the change is based on; a stale one gets 409.")


def _optional(name: str) -> tuple[Any, Any]:
    field = AgentSettings.model_fields[name]
    annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return annotation, Field(None, description=field.description)


# A partial change: any settings (absent means unchanged; null only where the setting allows it), plus the version.
AgentPatch = create_model(
    "AgentPatch",
    __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False),
    version=(int, Field(ge=1, le=2**53, description="The version the change is based on; a stale one gets 409.")),
    **{name: _optional(name) for name in SETTINGS},
)


class AgentOut(BaseModel):
    """An agent as stored (plain types: an agent written before a rule existed still reads back)."""

    agent_id: str
    version: int
    updated_at: datetime | None = None
    name: str
    business_name: str
    language: str
    timezone: str
    template_variables: list[str]
    instructions: str
    greeting: str
    voice: str
    speed: float
    model: str
    turn_detection: dict[str, Any]
    noise_reduction: str | None = None
    transcription_model: str
    transcription_language: str | None = None
    tools: list[str]
    transfer_number: str | None = None
    max_duration_s: int | float
    silence_timeout_s: int | float
    enabled: bool
    wait_for_callee: bool
    answering_machine: str
    voicemail_message: str | None = None
    retention_ratio: float | None = DEFAULT_RETENTION_RATIO
    truncate_on_barge_in: bool = True
    stable_instructions: bool = True
    own_speech_as_text: bool = True
    summary_schema: dict[str, Any] | None = None


class AgentList(BaseModel):
    agents: list[AgentOut]


class PreviewRequest(BaseModel):
    """Sample values for one call; anything left out gets what a real call would have."""

    model_config = ConfigDict(extra="forbid", strict=True)

    caller_number: PhoneNumber = "+14155550123"
    variables: dict[VariableName, Annotated[Text, Field(max_length=500)]] = Field(
        default_factory=dict, max_length=50, examples=[{"customer_name": "Jordan Lee", "order_id": "A-1042"}],
        json_schema_extra={"additionalProperties": False},  # names must match the pattern
        description="An outbound call's variables, and customer_name as a lookup would fill it.")
    at: datetime | None = Field(None, strict=False, description="The moment of the call (ISO 8601, years 1900-2200; "
                                                                "naive means UTC); default now. Sets {local_date} "
                                                                "and {local_time}.")

    @field_validator("at")
    @classmethod
    def _plausible_moment(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not 1900 <= value.year <= 2200:  # far enough from datetime's limits for any time zone's local time
            raise ValueError("must be between the years 1900 and 2200")
        return value


class PreviewOut(BaseModel):
    instructions: str
    greeting: str
    variables: dict[str, str]
    unfilled: list[str] = Field(description="Declared template variables this preview gave no value for.")


class VersionConflictOut(BaseModel):
    detail: str
    current_version: int
