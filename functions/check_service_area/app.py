"""check_service_area: whether the business covers a postcode or city."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import catalog, tool_contract
from voiceline.tool_contract import CallContext

TOOL = "check_service_area"
logger = Logger(service="voiceline-check-service-area")


def check_service_area(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return catalog.service_area(call.tenant_id, arguments.get("postcode"), arguments.get("city"))


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return tool_contract.handle(event, TOOL, check_service_area, logger)
