"""book_appointment: book a slot once per invocation, never twice per slot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import booking, tool_contract
from voiceline.idempotency import OncePerInvocation
from voiceline.tool_contract import CallContext

TOOL = "book_appointment"
logger = Logger(service="voiceline-book-appointment")


def book_appointment(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return booking.book(call.tenant_id, arguments["service"], arguments["slot_start"], arguments["customer_name"],
                        call.caller_number, notes=arguments.get("notes"), call_sid=call.call_sid)


book_appointment_once = OncePerInvocation(book_appointment)


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    book_appointment_once.register_lambda_context(context)
    return tool_contract.handle(event, TOOL, book_appointment_once, logger)
