"""The tool registry: what an agent may do on a call, how the model calls it, and where it runs.

Schemas never carry a tenant, agent or caller field: those come from the call context the bridge
fills in, so the model cannot point a tool at another business's data.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, SchemaError, ValidationError

from voiceline import settings

BRIDGE = "bridge"
# OpenAI's limit for function names.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LAMBDA_SHORT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# Argument names that would let the model choose whose data a tool touches.
_CONTEXT_FIELDS = frozenset({"tenant", "tenant_id", "agent", "agent_id", "call_sid", "caller_number", "from",
                             "to", "from_number"})


@dataclass(frozen=True)
class _Format:
    label: str
    hint: str
    shape: re.Pattern[str]
    parse: Callable[[str], object]  # raises ValueError for a well-shaped but impossible value

    def check(self, instance: object) -> bool:
        """jsonschema leaves non-strings to `type`; a string must have the shape and a real calendar value."""
        if not isinstance(instance, str):
            return True
        return bool(self.shape.fullmatch(instance)) and self.parse(instance) is not None


# Only these formats are checked; a schema naming any other would silently accept anything.
FORMATS: Mapping[str, _Format] = MappingProxyType({
    "date": _Format("date", "YYYY-MM-DD", re.compile(r"\d{4}-\d{2}-\d{2}"), date.fromisoformat),
    "local-date-time": _Format("local date and time", "YYYY-MM-DDTHH:MM, in the business's time zone",
                               re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"), datetime.fromisoformat),
})


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, known in FORMATS.items():
        checker.checks(name, raises=ValueError)(known.check)
    return checker


_FORMAT_CHECKER = _format_checker()


class RegistryError(ValueError):
    """A tool definition the model or the bridge could not use."""


class UnknownTool(KeyError):
    """A tool name that is not in the registry."""


@dataclass(frozen=True)
class Tool:
    """One thing an agent can do: what the model sees, and where and how long it runs."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    runs_on: str
    timeout_s: float

    def realtime_definition(self) -> dict[str, Any]:
        """The tool as a GA Realtime `session.tools` entry."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": copy.deepcopy(dict(self.parameters))}


def _object(properties: Mapping[str, Any], required: Iterable[str] = (), **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": list(required),
            "additionalProperties": False, **extra}


_SERVICE = {"type": "string", "minLength": 1, "maxLength": 80,
            "description": "The service as the caller names it, e.g. 'boiler service' or 'tap repair'."}
_DATE = {"type": "string", "format": "date"}

TOOLS: tuple[Tool, ...] = (
    Tool(
        name="check_availability",
        description=("Find free appointment slots for a service between two dates (at most 14 days apart), in the "
                     "business's local time. Use it before offering times; offer only slots it returns."),
        parameters=_object({
            "service": _SERVICE,
            "date_from": {**_DATE, "description": "First day to search, YYYY-MM-DD."},
            "date_to": {**_DATE, "description": "Last day to search, YYYY-MM-DD; same as date_from for one day."},
            "resource": {"type": "string", "minLength": 1, "maxLength": 40,
                         "description": "Only if the caller asks for a particular calendar, e.g. 'van-1'."},
        }, required=("service", "date_from", "date_to")),
        runs_on="check-availability",
        timeout_s=5.0,
    ),
    Tool(
        name="book_appointment",
        description=("Book one slot that check_availability returned, after the caller has agreed to the time and "
                     "given their name. Returns a confirmation code to read back to the caller."),
        parameters=_object({
            "service": _SERVICE,
            "slot_start": {"type": "string", "format": "local-date-time",
                           "description": "The slot's start exactly as check_availability gave it, YYYY-MM-DDTHH:MM."},
            "customer_name": {"type": "string", "minLength": 1, "maxLength": 100,
                              "description": "The caller's name as they gave it."},
            "notes": {"type": "string", "maxLength": 500,
                      "description": "Anything the engineer should know: the problem, access, parking."},
        }, required=("service", "slot_start", "customer_name")),
        runs_on="book-appointment",
        timeout_s=5.0,
    ),
    Tool(
        name="cancel_appointment",
        description=("Cancel the caller's appointment by its confirmation code. Only bookings made from the number "
                     "the caller is calling from can be cancelled."),
        parameters=_object({
            "confirmation_code": {"type": "string", "pattern": "^[A-Za-z0-9-]{4,12}$",
                                  "description": "The code the caller was given when booking, e.g. 'K7QM2P'."},
        }, required=("confirmation_code",)),
        runs_on="cancel-appointment",
        timeout_s=4.0,
    ),
    Tool(
        name="get_pricing",
        description="Look up the price of a service: a fixed price or a range, with any notes to mention.",
        parameters=_object({"service": _SERVICE}, required=("service",)),
        runs_on="get-pricing",
        timeout_s=3.0,
    ),
    Tool(
        name="check_service_area",
        description="Check whether the business serves an address, by its postcode (ZIP code) or its city or town.",
        parameters=_object({
            "postcode": {"type": "string", "minLength": 2, "maxLength": 12,
                         "description": "Postcode or ZIP code, e.g. '10001'."},
            "city": {"type": "string", "minLength": 2, "maxLength": 80, "description": "City or town name."},
        }, minProperties=1),
        runs_on="check-service-area",
        timeout_s=3.0,
    ),
    Tool(
        name="lookup_customer",
        description=("Look up the caller by the number they are calling from: their name, past and upcoming "
                     "bookings, and notes. Takes no arguments."),
        parameters=_object({}),
        runs_on="lookup-customer",
        timeout_s=3.0,
    ),
    Tool(
        name="search_knowledge",
        description=("Search the business's own articles (hours, guarantees, payment, emergencies, policies) and "
                     "answer from the passages it returns. Say so if nothing relevant comes back."),
        parameters=_object({
            "query": {"type": "string", "minLength": 2, "maxLength": 200,
                      "description": "The caller's question in a few words, e.g. 'do you take card payments'."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 5, "description": "Passages to return (default 3)."},
        }, required=("query",)),
        runs_on="search-knowledge",
        timeout_s=4.0,
    ),
    Tool(
        name="take_message",
        description=("Leave a message for the business when you cannot help directly. The caller's number is "
                     "recorded automatically; ask whether they want a call back."),
        parameters=_object({
            "message": {"type": "string", "minLength": 1, "maxLength": 1000,
                        "description": "The message in the caller's words, with what they need."},
            "callback_requested": {"type": "boolean", "description": "True if the caller wants a call back."},
            "caller_name": {"type": "string", "minLength": 1, "maxLength": 100,
                            "description": "The caller's name, if they gave it."},
        }, required=("message", "callback_requested")),
        runs_on="take-message",
        timeout_s=4.0,
    ),
    Tool(
        name="end_call",
        description=("Hang up after you have said goodbye. Call it in the same turn as your goodbye; the call ends "
                     "once the goodbye has finished playing."),
        parameters=_object({
            "reason": {"type": "string", "maxLength": 200, "description": "Why the call is ending, for the records."},
        }),
        runs_on=BRIDGE,
        timeout_s=10.0,
    ),
    Tool(
        name="transfer_call",
        description=("Transfer the caller to a person at the business when they ask for one or you cannot help. "
                     "Tell the caller you are transferring them first."),
        parameters=_object({
            "reason": {"type": "string", "minLength": 1, "maxLength": 200,
                       "description": "Why the caller needs a person, passed on with the handoff."},
        }, required=("reason",)),
        runs_on=BRIDGE,
        timeout_s=10.0,
    ),
)


def build_registry(tools: Iterable[Tool]) -> Mapping[str, Tool]:
    """The tools by name, or RegistryError naming the first tool the model or the bridge could not use."""
    registry: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in registry:
            raise RegistryError(f"tool {tool.name!r} is defined twice")
        _check_tool(tool)
        registry[tool.name] = tool
    return MappingProxyType(registry)


def _check_tool(tool: Tool) -> None:
    if not _TOOL_NAME.fullmatch(tool.name):
        raise RegistryError(f"tool name {tool.name!r} must be 1-64 letters, digits, '_' or '-'")
    if not tool.description.strip():
        raise RegistryError(f"{tool.name}: the model needs a description")
    if tool.runs_on != BRIDGE and not _LAMBDA_SHORT_NAME.fullmatch(tool.runs_on):
        raise RegistryError(f"{tool.name}: runs_on {tool.runs_on!r} is neither {BRIDGE!r} nor a short Lambda name")
    if tool.timeout_s <= 0:
        raise RegistryError(f"{tool.name}: timeout_s must be positive")
    try:
        Draft202012Validator.check_schema(tool.parameters)
    except SchemaError as error:
        raise RegistryError(f"{tool.name}: parameters are not a valid JSON Schema: {error.message}") from None
    if tool.parameters.get("type") != "object" or tool.parameters.get("additionalProperties") is not False:
        raise RegistryError(f"{tool.name}: parameters must be an object schema with additionalProperties false")
    for name, schema in tool.parameters.get("properties", {}).items():
        if name.lower() in _CONTEXT_FIELDS:
            raise RegistryError(f"{tool.name}: {name!r} comes from the call context, never from the model")
        if "format" in schema and schema["format"] not in FORMATS:
            raise RegistryError(f"{tool.name}: {name!r} has format {schema['format']!r}, which is not checked")


REGISTRY: Mapping[str, Tool] = build_registry(TOOLS)


def tools_for(names: Iterable[str]) -> list[Tool]:
    """The named tools in the given order, e.g. an agent's tool list for session.update."""
    tools = []
    for name in names:
        if name not in REGISTRY:
            raise UnknownTool(name)
        tools.append(REGISTRY[name])
    return tools


def argument_errors(tool: Tool, arguments: Any) -> list[str]:
    """[] when the arguments fit the tool's schema; else short messages the model can act on."""
    validator = Draft202012Validator(tool.parameters, format_checker=_FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(arguments), key=lambda error: list(map(str, error.absolute_path)))
    return list(dict.fromkeys(message for error in errors for message in _messages(error)))


def lambda_function_name(tool: Tool) -> str:
    """The deployed function behind a business tool, e.g. voiceline-book-appointment."""
    if tool.runs_on == BRIDGE:
        raise ValueError(f"{tool.name} runs in the bridge, not in a Lambda")
    return settings.optional("TOOL_FUNCTION_PREFIX", "voiceline-") + tool.runs_on


_TYPE_NAMES = {"object": "an object", "string": "a string", "integer": "a whole number", "number": "a number",
               "boolean": "true or false", "array": "a list"}


def _messages(error: ValidationError) -> list[str]:
    """jsonschema's messages rephrased for the model, one per problem."""
    where = ".".join(map(str, error.absolute_path)) or "arguments"
    value = error.validator_value
    match error.validator:
        case "required":
            return [f"{name}: required" for name in value if name not in error.instance]
        case "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            hint = f"allowed: {', '.join(allowed)}" if allowed else "this tool takes no arguments"
            return [f"{name}: unexpected argument ({hint})" for name in sorted(error.instance) if name not in allowed]
        case "type":
            return [f"{where}: must be {_TYPE_NAMES.get(value, value)}"]
        case "format":
            known = FORMATS[value]
            return [f"{where}: {error.instance!r} is not a valid {known.label} ({known.hint})"]
        case "minLength" if value == 1:
            return [f"{where}: must not be empty"]
        case "minLength" | "maxLength":
            bound = "at least" if error.validator == "minLength" else "at most"
            return [f"{where}: must be {bound} {value} characters"]
        case "minimum" | "maximum":
            bound = "at least" if error.validator == "minimum" else "at most"
            return [f"{where}: must be {bound} {value}"]
        case "minProperties":
            return [f"arguments: give at least one of {', '.join(sorted(error.schema.get('properties', {})))}"]
        case "pattern":
            expected = error.schema.get("description", value)
            return [f"{where}: {error.instance!r} is not in the expected form ({expected})"]
    return [f"{where}: {error.message}"]
