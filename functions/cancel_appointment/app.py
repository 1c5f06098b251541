"""cancel_appointment: cancel a booking made from the caller's own number."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import booking, tool_contract
from voiceline.tool_contract import CallContext

TOOL = "cancel_appointment"
logger = Logger(service="voiceline-cancel-appointment")


def cancel_appointment(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return booking.cancel(call.tenant_id, arguments["confirmation_code"], call.caller_number)


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return tool_contract.handle(event, TOOL, cancel_appointment, logger)
