"""get_pricing: a service's price or price range, and notes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import catalog, tool_contract
from voiceline.tool_contract import CallContext

TOOL = "get_pricing"
logger = Logger(service="voiceline-get-pricing")


def get_pricing(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return catalog.pricing(call.tenant_id, arguments["service"])


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return tool_contract.handle(event, TOOL, get_pricing, logger)
