"""Business tools run as Lambdas: one boto3 `Invoke` per function call, off the event loop, never raising.

The reply the model gets is always the tool contract's shape, `{"ok": true, "output": {...}}` or
`{"ok": false, "error": {"type", "message"}}`, whatever went wrong on the way: a timeout, a
throttle, a crashed handler or a reply that is not the contract's.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from voiceline.tool_contract import CallContext, request
from voiceline.tools import BRIDGE, REGISTRY, Tool, argument_errors, lambda_function_name

logger = Logger(service="voiceline-bridge", child=True)

# ok: the tool did its work; tool_error: it declined with a reason for the model (slot_taken…);
# the rest are failures on the way, each turned into an error output the model can apologise for.
Outcome = Literal["ok", "tool_error", "invalid_arguments", "timeout", "throttled", "lambda_error", "bad_reply",
                  "invoke_failed", "unknown_tool", "tool_disabled"]

CONNECT_TIMEOUT_S = 1.0
THROTTLE_RETRIES = 2  # bounded: a throttled tool answers late at worst, never hangs the turn
THROTTLE_BACKOFF_S = 0.1
WORKERS = 32  # invocations in flight per bridge task; Invoke threads mostly wait on the network

_APOLOGY = "Apologise briefly, and offer to take a message or try again later."
FAILURE_MESSAGES: dict[str, str] = {
    "timeout": "The system did not answer in time. " + _APOLOGY,
    "throttled": "The system is busy right now. " + _APOLOGY,
    "lambda_error": "The system failed. " + _APOLOGY,
    "bad_reply": "The system gave an answer that could not be read. " + _APOLOGY,
    "invoke_failed": "The system could not be reached. " + _APOLOGY,
}


@dataclass(frozen=True)
class ToolResult:
    """What the model is told, and what the call record keeps about it."""

    outcome: Outcome
    reply: dict[str, Any]
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def succeeded(output: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "output": output}


def failed(error_type: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": error_type, "message": message}}


def parse_arguments(tool: Tool, arguments_json: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(arguments, None) when they fit the schema, else (None, an error reply naming what was wrong)."""
    try:
        arguments = json.loads(arguments_json or "{}")
    except ValueError as error:
        return None, failed("invalid_arguments", f"arguments are not valid JSON: {error}")
    problems = argument_errors(tool, arguments)
    if problems:
        return None, failed("invalid_arguments", "; ".join(problems))
    return arguments, None


class _Throttled(Exception):
    pass


class ToolInvoker:
    """Invokes tool Lambdas through boto3, which honours AWS_ENDPOINT_URL_LAMBDA (the local gateway)."""

    def __init__(self, workers: int = WORKERS) -> None:
        # Its own pool: a slow tool must never queue behind, or in front of, DynamoDB writes.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tool-invoke")
        # Made up front: building a boto3 client reads its service model for tens of ms, which would
        # stall every call's audio if it happened on the event loop mid-call.
        self._session = boto3.session.Session()  # one copy of the service model for every client
        self._clients = {timeout_s: _lambda_client(self._session, timeout_s) for timeout_s in
                         {tool.timeout_s for tool in REGISTRY.values() if tool.runs_on != BRIDGE}}

    async def invoke(self, tool: Tool, arguments: dict[str, Any], call: CallContext,
                     invocation_id: str) -> ToolResult:
        """Run the tool once (retrying throttles only) within its timeout; never raises."""
        started = time.monotonic()
        deadline = started + tool.timeout_s
        payload = json.dumps(request(tool.name, arguments, call, invocation_id)).encode()
        outcome, reply = "invoke_failed", failed("invoke_failed", FAILURE_MESSAGES["invoke_failed"])
        for attempt in range(THROTTLE_RETRIES + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome = "timeout"
                break
            try:
                outcome, reply = await asyncio.wait_for(self._invoke_in_thread(tool, payload), remaining)
                break
            except _Throttled:
                outcome = "throttled"
                await asyncio.sleep(min(THROTTLE_BACKOFF_S * 2 ** attempt, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                outcome = "timeout"
                break
        if outcome in FAILURE_MESSAGES:
            reply = failed(outcome, FAILURE_MESSAGES[outcome])
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        if outcome not in ("ok", "tool_error"):
            logger.warning("tool invocation failed", tool=tool.name, invocation_id=invocation_id, outcome=outcome,
                           duration_ms=duration_ms)
        return ToolResult(outcome, reply, duration_ms)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _invoke_in_thread(self, tool: Tool, payload: bytes) -> tuple[Outcome, dict[str, Any]]:
        client = self._client(tool.timeout_s)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _invoke, client, tool, payload)

    def _client(self, read_timeout_s: float) -> BaseClient:
        if read_timeout_s not in self._clients:  # a tool outside the registry, e.g. in a test
            self._clients[read_timeout_s] = _lambda_client(self._session, read_timeout_s)
        return self._clients[read_timeout_s]


def _lambda_client(session: boto3.session.Session, read_timeout_s: float) -> BaseClient:
    """One client per timeout, since botocore's read timeout is per client; retries are ours (throttles only)."""
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=read_timeout_s,
                    retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=WORKERS)
    return session.client("lambda", config=config)


def _invoke(client: BaseClient, tool: Tool, payload: bytes) -> tuple[Outcome, dict[str, Any]]:
    try:
        response = client.invoke(FunctionName=lambda_function_name(tool), Payload=payload)
        body = response["Payload"].read()
    except (ReadTimeoutError, ConnectTimeoutError):
        return "timeout", {}
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("TooManyRequestsException", "ThrottlingException"):
            raise _Throttled from error
        logger.warning("Lambda refused the invocation", tool=tool.name, code=code)
        return "invoke_failed", {}
    except BotoCoreError as error:
        logger.warning("Lambda invocation failed", tool=tool.name, error=repr(error))
        return "invoke_failed", {}
    if response.get("FunctionError"):
        logger.warning("tool Lambda failed", tool=tool.name, function_error=response["FunctionError"],
                       detail=body[:500].decode(errors="replace"))
        return "lambda_error", {}
    return _contract_reply(body)


def _contract_reply(body: bytes) -> tuple[Outcome, dict[str, Any]]:
    """The tool's reply as the contract defines it, or bad_reply."""
    try:
        reply = json.loads(body)
    except ValueError:
        return "bad_reply", {}
    if not isinstance(reply, dict):
        return "bad_reply", {}
    if reply.get("ok") is True and isinstance(reply.get("output"), dict):
        return "ok", succeeded(reply["output"])
    error = reply.get("error")
    if (reply.get("ok") is False and isinstance(error, dict) and isinstance(error.get("type"), str)
            and isinstance(error.get("message"), str)):
        return "tool_error", failed(error["type"], error["message"])
    return "bad_reply", {}
