"""Tools that write run once per invocation_id: Powertools idempotency on the Idempotency table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from voiceline import settings
from voiceline.tool_contract import INVALID_REQUEST, CallContext, ToolCore, ToolError

# The bridge retries a throttled invoke within seconds; an hour covers any retry worth honouring.
RECORD_TTL_S = 3600
IN_PROGRESS = "in_progress"
_DYNAMODB = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})


class OncePerInvocation:
    """A tool core that a retried invocation (same tenant and invocation_id) answers from the first run's output.

    Only a returned output is kept: a ToolError or a crash removes the record, so a retry runs again.
    The key is (tenant, invocation_id) under the tool's name, never the module's: the local gateway
    imports a handler once per execution environment, under a different module name each time.
    The arguments are checked too, so a reused invocation_id with other arguments is refused rather
    than answered with another request's result.
    """

    def __init__(self, core: ToolCore, name: str | None = None) -> None:
        self._core = core
        self._config = IdempotencyConfig(expires_after_seconds=RECORD_TTL_S,
                                         event_key_jmespath="[tenant_id, invocation_id]",
                                         payload_validation_jmespath="arguments")
        persistence = DynamoDBPersistenceLayer(table_name=settings.require("IDEMPOTENCY_TABLE"), boto_config=_DYNAMODB)
        self._run = idempotent_function(self._run_core, data_keyword_argument="request", persistence_store=persistence,
                                        config=self._config, key_prefix=name or core.__name__)

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Lets an in-progress record expire with this invocation, so a retry after a Lambda timeout can run."""
        self._config.register_lambda_context(context)

    def __call__(self, arguments: Mapping[str, Any], call: CallContext, *, invocation_id: str) -> Mapping[str, Any]:
        request = {"tenant_id": call.tenant_id, "invocation_id": invocation_id, "arguments": dict(arguments)}
        try:
            return self._run(arguments, call, request=request)
        except IdempotencyAlreadyInProgressError:
            raise ToolError(IN_PROGRESS, "This request is still being handled. Wait a moment, then check the "
                                         "result before trying again.") from None
        except IdempotencyValidationError:
            raise ToolError(INVALID_REQUEST, "This invocation_id was already used with other arguments.") from None

    def _run_core(self, arguments: Mapping[str, Any], call: CallContext, *, request: Mapping[str, Any]
                  ) -> Mapping[str, Any]:
        return self._core(arguments, call, invocation_id=request["invocation_id"])
