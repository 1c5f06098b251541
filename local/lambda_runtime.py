"""template.yaml's Python functions run in-process, each in execution environments as Lambda gives them.

An execution environment is one import of the handler module, so module globals (a Powertools
resolver, an idempotency config, a client) belong to it, and it runs one event at a time. A busy
function scales out to a new environment, cold-started on first use, up to its reserved concurrency
(`ReservedConcurrentExecutions`) or DEFAULT_CONCURRENCY. What is process-wide in Python stays shared:
sibling modules of the handler, the logging tree, and Powertools Metrics (class-level state).
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ACCOUNT_ID = "123456789012"
DEFAULT_STACK_NAME = "voiceline"  # samconfig.toml's stack_name
DEFAULT_CONCURRENCY = 10

logger = logging.getLogger("voiceline.gateway")

Handler = Callable[[Any, "LambdaContext"], Any]

# One import at a time: a handler's directory is on sys.path only while it loads, and two loading
# at once could find each other's sibling modules.
_IMPORT_LOCK = threading.Lock()
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")


class GatewayError(RuntimeError):
    """The template asks for something the local gateway cannot serve."""


class Throttled(RuntimeError):
    """Every execution environment the function may have is busy: Lambda's TooManyRequestsException."""


def import_module_from(path: Path, module_name: str) -> ModuleType:
    """Import one handler file as Lambda would, with its code directory on sys.path while it loads."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise GatewayError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    code_dir = str(path.parent)
    sys.path.insert(0, code_dir)
    sys.modules[module_name] = module  # dataclasses and pydantic look their module up while it loads
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    finally:
        sys.path.remove(code_dir)
    return module


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def function_arn(function_name: str) -> str:
    return f"arn:aws:lambda:{region()}:{ACCOUNT_ID}:function:{function_name}"


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return function_arn(self.function_name)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@dataclass
class LambdaFunction:
    """One AWS::Serverless::Function and its execution environments, created as invocations need them."""

    name: str
    """The logical id in the template."""
    code_dir: Path
    handler: str
    memory_mb: int = 128
    timeout_s: float = 3.0
    events: dict[str, Any] = field(default_factory=dict)
    function_name: str | None = None
    """The template's FunctionName as deployed; None when CloudFormation would make one up."""
    concurrency: int = DEFAULT_CONCURRENCY
    _warm: list[Handler] = field(default_factory=list, repr=False)
    _environment_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _warm_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(max(self.concurrency, 1))

    @property
    def deployed_name(self) -> str:
        return self.function_name or self.name

    def invoke(self, event: Any, *, wait: bool = True) -> Any:
        """Run the handler in a free environment; without `wait`, raise Throttled when none is free.

        A reserved concurrency of 0 throttles every invocation, as in Lambda.
        """
        if self.concurrency < 1 or not self._slots.acquire(blocking=wait):
            raise Throttled(f"{self.deployed_name}: all {self.concurrency} execution environments are busy")
        try:
            entry = self._take_warm() or self._cold_start()
            try:
                return entry(event, LambdaContext(self.deployed_name, self.memory_mb, self.timeout_s))
            finally:
                with self._warm_lock:
                    self._warm.append(entry)
        finally:
            self._slots.release()

    def _take_warm(self) -> Handler | None:
        with self._warm_lock:
            return self._warm.pop() if self._warm else None

    def _cold_start(self) -> Handler:
        module_path, _, function_name = self.handler.rpartition(".")
        if not module_path:
            raise GatewayError(f"{self.name}: Handler {self.handler!r} is not module.function")
        path = self.code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
        number = next(self._environment_numbers)
        with _IMPORT_LOCK:
            module = import_module_from(path, f"lambda_{self.name}" if number == 1 else f"lambda_{self.name}_{number}")
        return getattr(module, function_name)


def substitution_values(template: dict[str, Any]) -> dict[str, str | None]:
    """What `${Name}` stands for in a !Sub before deployment: parameter defaults and pseudo parameters.

    The stack name comes from env STACK_NAME and the region from AWS_REGION, as `sam deploy` would set them.
    """
    parameters = template.get("Parameters") or {}
    values: dict[str, str | None] = {name: str(spec["Default"]) for name, spec in parameters.items()
                                     if isinstance(spec, dict) and "Default" in spec}
    values.update({"AWS::StackName": os.environ.get("STACK_NAME", DEFAULT_STACK_NAME), "AWS::Region": region(),
                   "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"})
    return values


def rendered(value: Any, values: Mapping[str, str | None]) -> str | None:
    """A plain string, !Ref or !Sub as CloudFormation would render it; None if it needs deployed resources."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    if "Ref" in value:
        return values.get(value["Ref"])
    substitution = value.get("Fn::Sub")
    if isinstance(substitution, list) and len(substitution) == 2 and isinstance(substitution[1], dict):
        text = substitution[0]
        values = {**values, **{name: rendered(inner, values) for name, inner in substitution[1].items()}}
    else:
        text = substitution
    if not isinstance(text, str):
        return None

    def variable(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:  # ${!Literal} stands for the text ${Literal}
            return "${" + name + "}"
        found = values.get(name)
        if found is None:
            raise LookupError(name)
        return found

    try:
        return _SUB_VARIABLE.sub(variable, text)
    except LookupError:
        return None


def lambda_functions(template: dict[str, Any], base_dir: Path) -> list[LambdaFunction]:
    """Every Python function in the template, with Globals.Function filling in what a function leaves out."""
    defaults = (template.get("Globals") or {}).get("Function") or {}
    values = substitution_values(template)
    functions = []
    for name, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = {**defaults, **(resource.get("Properties") or {})}
        code_uri, handler = properties.get("CodeUri"), properties.get("Handler")
        if not str(properties.get("Runtime", "")).startswith("python") or not isinstance(code_uri, str) or not handler:
            logger.warning("%s skipped: only Python functions with a local CodeUri and a Handler run locally", name)
            continue
        function_name = None
        if "FunctionName" in properties:
            function_name = rendered(properties["FunctionName"], values)
            if function_name is None:
                logger.warning("%s: FunctionName %r needs a deployed stack; invoke it by its logical id", name,
                               properties["FunctionName"])
        functions.append(LambdaFunction(name, base_dir / code_uri, handler,
                                        memory_mb=int(properties.get("MemorySize", 128)),
                                        timeout_s=float(properties.get("Timeout", 3)),
                                        events=properties.get("Events") or {},
                                        function_name=function_name,
                                        concurrency=int(properties.get("ReservedConcurrentExecutions",
                                                                       DEFAULT_CONCURRENCY))))
    return functions
