"""lookup_customer: the caller's name, bookings and notes, by their number."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import customers, tool_contract
from voiceline.tool_contract import CallContext

TOOL = "lookup_customer"
logger = Logger(service="voiceline-lookup-customer")


def lookup_customer(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return customers.profile(call.tenant_id, call.caller_number)


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return tool_contract.handle(event, TOOL, lookup_customer, logger)
