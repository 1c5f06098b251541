"""Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`) over the template's functions.

What `sam local start-lambda` serves, without Docker: boto3's lambda client, pointed here by
AWS_ENDPOINT_URL_LAMBDA, gets the replies and errors Lambda would give it. A function is named by its
FunctionName, its ARN or its logical id. Invocations run concurrently, each in an execution
environment of its own; beyond the function's concurrency they are throttled, as in Lambda.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from local import lambda_runtime
from local.lambda_runtime import LambdaFunction, Throttled, function_arn

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
WORKERS = 64  # invocations in flight across all functions; a handler past its timeout still holds one
EXECUTED_VERSION = {"X-Amz-Executed-Version": "$LATEST"}

logger = logging.getLogger("voiceline.gateway")


def _name_and_qualifier(identifier: str) -> tuple[str, str | None]:
    """`name`, `name:qualifier`, `123456789012:function:name` or a full ARN, as Lambda accepts them."""
    parts = identifier.split(":")
    if "function" in parts[:-1]:
        parts = parts[parts.index("function") + 1:]
    return parts[0], parts[1] if len(parts) > 1 else None


def _service_error(status: int, code: str, message: str, **details: str) -> Response:
    """An error of the Lambda service itself, shaped so botocore raises it as `code`."""
    return JSONResponse({"Type": "User", "message": message, **details}, status, headers={"x-amzn-ErrorType": code})


def _function_error(error: dict[str, Any]) -> Response:
    """The function failed: Lambda still answers 200, and says so in X-Amz-Function-Error."""
    return JSONResponse(error, 200, headers={**EXECUTED_VERSION, "X-Amz-Function-Error": "Unhandled"})


def _unhandled(error: BaseException) -> dict[str, Any]:
    """What the Python runtime reports for an exception the handler let out, with the handler's frames only."""
    frames = traceback.extract_tb(error.__traceback__)
    runtime_frames = [index for index, frame in enumerate(frames) if frame.filename == lambda_runtime.__file__]
    handler_frames = frames[runtime_frames[-1] + 1:] if runtime_frames else frames
    return {"errorMessage": str(error), "errorType": type(error).__name__,
            "stackTrace": traceback.format_list(handler_frames)}


class InvokeApi:
    def __init__(self, functions: list[LambdaFunction]) -> None:
        self._functions = functions
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lambda-invoke")

    def find(self, name: str) -> LambdaFunction | None:
        """The function deployed as `name`, else the one whose logical id is `name`."""
        return (next((function for function in self._functions if function.function_name == name), None)
                or next((function for function in self._functions if function.name == name), None))

    async def handle(self, request: Request) -> Response:
        name, qualifier = _name_and_qualifier(request.path_params["name"])
        qualifier = request.query_params.get("Qualifier", qualifier)
        function = self.find(name)
        if function is None or qualifier not in (None, "$LATEST"):
            arn = function_arn(name) + (f":{qualifier}" if qualifier else "")
            return _service_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        body = await request.body()
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError as error:
            return _service_error(400, "InvalidRequestContentException",
                                  f"Could not parse request body into json: {error}")
        invocation_type = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type == "RequestResponse":
            return await self._run(function, event)
        if invocation_type == "Event":
            self._executor.submit(self._run_queued, function, event)
            return Response(status_code=202)
        if invocation_type == "DryRun":
            return Response(status_code=204)
        return _service_error(400, "InvalidParameterValueException",
                              f"Unsupported InvocationType: {invocation_type}")

    async def _run(self, function: LambdaFunction, event: Any) -> Response:
        running = asyncio.get_running_loop().run_in_executor(self._executor, partial(function.invoke, event,
                                                                                      wait=False))
        done, _ = await asyncio.wait({running}, timeout=function.timeout_s)
        if not done:
            # Lambda would stop the handler here; a thread can't be stopped, so it runs on and keeps its
            # environment busy, and the next invocation gets a fresh one.
            running.cancel()
            return _function_error({"errorMessage": f"Task timed out after {function.timeout_s:.2f} seconds",
                                    "errorType": "Sandbox.Timedout"})
        try:
            result = running.result()
        except Throttled:
            return _service_error(429, "TooManyRequestsException", "Rate Exceeded.",
                                  Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
        except Exception as error:
            logger.warning("%s failed", function.deployed_name, exc_info=error)
            return _function_error(_unhandled(error))
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as error:
            return _function_error({"errorMessage": f"Unable to marshal response: {error}",
                                    "errorType": "Runtime.MarshalError"})
        return Response(payload, 200, media_type="application/json", headers=EXECUTED_VERSION)

    @staticmethod
    def _run_queued(function: LambdaFunction, event: Any) -> None:
        """An `Event` invocation: Lambda queues it for a free environment and only logs what goes wrong."""
        try:
            function.invoke(event)
        except Exception:
            logger.exception("%s failed on an asynchronous invocation", function.deployed_name)
