"""DynamoDB that misbehaves on demand: moto's server behind a small HTTP proxy that answers with real DynamoDB errors.

Not a test module. The proxy answers the requests a rule matches (by operation and table) with the
error DynamoDB itself sends when it throttles (HTTP 400, a JSON `__type`), for the next `times`
requests, or holds them unanswered until the test releases them (DynamoDB slow to answer), and
passes every other request through to moto unchanged. The code under test talks to it
through AWS_ENDPOINT_URL_DYNAMODB, exactly as it talks to DynamoDB.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from moto.server import ThreadedMotoServer
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from local.asgi_server import ThreadedServer
from local.dynamo import create_tables
from local.stack import free_port
from voiceline.models import ALL_MODELS

THROTTLED = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
THROTTLING = "com.amazon.coral.availability#ThrottlingException"
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "date", "server"}


@dataclass
class Rule:
    operation: str  # e.g. "BatchWriteItem", "GetItem"
    table: str | None  # None: any table
    times: float  # how many more matching requests fail; float("inf") for "until told otherwise"
    error_type: str = THROTTLED
    matched: int = 0  # requests failed, or held
    released: threading.Event | None = None  # for a hold: set, and the held requests go on to moto

    def release(self) -> None:
        assert self.released is not None, "only a hold is released"
        self.released.set()


@dataclass
class FaultyDynamoDB:
    moto_url: str
    rules: list[Rule] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "Operation table" of each request that reached the proxy

    def fail(self, operation: str, table: str | None = None, times: float = float("inf"),
             error_type: str = THROTTLED) -> Rule:
        rule = Rule(operation, table, times, error_type)
        self.rules.append(rule)
        return rule

    def hold(self, operation: str, table: str | None = None, times: float = float("inf")) -> Rule:
        """Matching requests wait, unanswered, until `rule.release()`; then they reach moto as usual."""
        rule = Rule(operation, table, times, released=threading.Event())
        self.rules.append(rule)
        return rule

    def heal(self) -> None:
        self.rules.clear()

    def _matching_rule(self, operation: str, body: bytes) -> Rule | None:
        for rule in self.rules:
            if rule.operation != operation or rule.matched >= rule.times:
                continue
            if rule.table is None or rule.table in _tables(body):
                rule.matched += 1
                return rule
        return None

    def app(self) -> ASGIApp:
        client = httpx.AsyncClient(base_url=self.moto_url, timeout=10)

        async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            request = Request(scope, receive)
            body = await request.body()
            operation = request.headers.get("x-amz-target", "").rpartition(".")[2]
            self.requests.append(f"{operation} {' '.join(sorted(_tables(body)))}")
            rule = self._matching_rule(operation, body)
            if rule is not None and rule.released is not None:
                while not rule.released.is_set():
                    await asyncio.sleep(0.005)
            if rule is not None and rule.released is None:
                error = {"__type": rule.error_type, "message": "Rate of requests exceeds the allowed throughput."}
                response = Response(json.dumps(error), 400, media_type="application/x-amz-json-1.0")
            else:
                upstream = await client.request(request.method, request.url.path, content=body,
                                                headers={k: v for k, v in request.headers.items() if k != "host"})
                response = Response(upstream.content, upstream.status_code,
                                    {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})
            await response(scope, receive, send)

        return proxy


def _tables(body: bytes) -> set[str]:
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return set()
    tables = {request["TableName"]} if isinstance(request.get("TableName"), str) else set()
    return tables | set(request.get("RequestItems") or {})


@contextmanager
def faulty_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyDynamoDB]:
    """A fresh moto server with every table, reached through the fault proxy (on its own thread, so that
    synchronous DynamoDB calls from the test's event loop do not wait on themselves)."""
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    faults = FaultyDynamoDB(f"http://127.0.0.1:{port}")
    try:
        with ThreadedServer(faults.app()) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
            for model in ALL_MODELS:
                model._connection = None  # a fresh client, which reads the endpoint
            create_tables()
            yield faults
    finally:
        for model in ALL_MODELS:
            model._connection = None
        moto.stop()
