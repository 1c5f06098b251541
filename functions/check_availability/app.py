"""check_availability: free appointment slots in the business's time zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import booking, tool_contract
from voiceline.tool_contract import CallContext

TOOL = "check_availability"
logger = Logger(service="voiceline-check-availability")


def check_availability(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return booking.availability(call.tenant_id, arguments["service"], date.fromisoformat(arguments["date_from"]),
                                date.fromisoformat(arguments["date_to"]), arguments.get("resource"))


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return tool_contract.handle(event, TOOL, check_availability, logger)
