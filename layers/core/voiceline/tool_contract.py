"""The tool invocation contract, Lambda side: the bridge's request in, an ok/error reply out.

The tenant always comes from the request's `call`, which the bridge fills in from the verified
stream token; nothing the model says can change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from voiceline.tools import REGISTRY, argument_errors

INVALID_REQUEST = "invalid_request"
INVALID_ARGUMENTS = "invalid_arguments"
INTERNAL_ERROR = "internal_error"
# Safe for the model to hear: no stack traces, table names or other tenants' details.
INTERNAL_ERROR_MESSAGE = "The tool failed unexpectedly. Apologise, and offer to take a message instead."


class ToolError(Exception):
    """An expected failure the model can explain to the caller, e.g. slot_taken or not_found."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.message = message


@dataclass(frozen=True)
class CallContext:
    """Who is calling whom, on whose behalf: filled in by the bridge, never by the model."""

    call_sid: str
    agent_id: str
    tenant_id: str
    caller_number: str  # the customer: the caller, or the callee of an outbound call
    called_number: str  # the business's number

    def as_request(self) -> dict[str, str]:
        return {"call_sid": self.call_sid, "agent_id": self.agent_id, "tenant_id": self.tenant_id,
                "from": self.caller_number, "to": self.called_number}


class ToolCore(Protocol):
    """A tool's work over plain values; invocation_id is keyword-only so idempotency can key on it."""

    def __call__(self, arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
        ...


def request(tool: str, arguments: Mapping[str, Any], call: CallContext, invocation_id: str) -> dict[str, Any]:
    """The JSON the bridge sends a tool Lambda."""
    return {"tool": tool, "arguments": dict(arguments), "call": call.as_request(), "invocation_id": invocation_id}


def _ok(output: Mapping[str, Any]) -> dict[str, Any]:
    return {"ok": True, "output": dict(output)}


def _failed(error_type: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": error_type, "message": message}}


def handle(event: Any, tool_name: str, core: ToolCore, logger: Logger) -> dict[str, Any]:
    """Run one tool invocation: check the request and the arguments before any work, then shape the reply."""
    tool = REGISTRY[tool_name]
    try:
        call, invocation_id = _parse(event, tool_name)
    except ToolError as error:
        logger.warning("tool request rejected", reason=error.message)
        return _failed(error.type, error.message)
    logger.append_keys(call_sid=call.call_sid, tenant_id=call.tenant_id, tool=tool_name, invocation_id=invocation_id)
    problems = argument_errors(tool, event["arguments"])
    if problems:
        logger.info("tool arguments rejected", problems=problems)
        return _failed(INVALID_ARGUMENTS, "; ".join(problems))
    try:
        output = core(event["arguments"], call, invocation_id=invocation_id)
    except ToolError as error:
        logger.info("tool declined", error_type=error.type)
        return _failed(error.type, error.message)
    except Exception:
        logger.exception("tool failed")
        return _failed(INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE)
    return _ok(output)


def _parse(event: Any, tool_name: str) -> tuple[CallContext, str]:
    if not isinstance(event, Mapping):
        raise ToolError(INVALID_REQUEST, "the request must be a JSON object")
    if event.get("tool") != tool_name:
        raise ToolError(INVALID_REQUEST, f"this function runs {tool_name}, not {event.get('tool')!r}")
    if "arguments" not in event:
        raise ToolError(INVALID_REQUEST, "the request has no arguments")
    invocation_id = event.get("invocation_id")
    if not isinstance(invocation_id, str) or not invocation_id:
        raise ToolError(INVALID_REQUEST, "invocation_id must be a non-empty string")
    call = event.get("call")
    if not isinstance(call, Mapping):
        raise ToolError(INVALID_REQUEST, "call must be an object")
    fields = {name: call.get(name) for name in ("call_sid", "agent_id", "tenant_id", "from", "to")}
    # Keys join the tenant to other parts with "#" (tenant#resource, tenant#code), so a tenant id may not hold one.
    wrong = [name for name, value in fields.items()
             if not isinstance(value, str) or (name in ("call_sid", "agent_id", "tenant_id") and not value)
             or (name == "tenant_id" and "#" in value)]
    if wrong:
        raise ToolError(INVALID_REQUEST, f"call is missing or has bad values for: {', '.join(wrong)}")
    context = CallContext(call_sid=fields["call_sid"], agent_id=fields["agent_id"], tenant_id=fields["tenant_id"],
                          caller_number=fields["from"], called_number=fields["to"])
    return context, invocation_id
