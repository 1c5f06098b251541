"""take_message: store a message for the business, once per invocation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import messages, tool_contract
from voiceline.idempotency import OncePerInvocation
from voiceline.tool_contract import CallContext

TOOL = "take_message"
logger = Logger(service="voiceline-take-message")


def take_message(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return messages.take(call.tenant_id, call.caller_number, arguments["message"], arguments["callback_requested"],
                         arguments.get("caller_name"), call_sid=call.call_sid)


take_message_once = OncePerInvocation(take_message)


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    take_message_once.register_lambda_context(context)
    return tool_contract.handle(event, TOOL, take_message_once, logger)
