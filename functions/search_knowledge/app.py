"""search_knowledge: ranked passages from the business's own articles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import knowledge, tool_contract
from voiceline.tool_contract import CallContext

TOOL = "search_knowledge"
logger = Logger(service="voiceline-search-knowledge")


def search_knowledge(arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
    return knowledge.search(call.tenant_id, arguments["query"], arguments.get("limit", knowledge.DEFAULT_LIMIT))


@logger.inject_lambda_context(correlation_id_path="invocation_id", clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return tool_contract.handle(event, TOOL, search_knowledge, logger)
