"""The local stand-in for API Gateway: serves template.yaml's HttpApi routes by calling their Lambda handlers.

It does what `sam local start-api` does, without Docker: each request becomes an HTTP API payload v2.0
event, the function's handler runs in-process on a worker thread, and its reply becomes the response.
It also serves Lambda's Invoke API for the same functions, as `sam local start-lambda` does (see
local.lambda_invoke), so a boto3 client with AWS_ENDPOINT_URL_LAMBDA pointing here works unchanged.
The gateway says `x-forwarded-proto: http` because that is what the client used. Behind a tunnel
(a real phone through ngrok), set PUBLIC_WEBHOOK_BASE_URL so Twilio signatures check against the
tunnel's URL.

    python -m local.gateway --port 3000 [--template template.yaml]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.environment import GATEWAY_PORT, local_environment
from local.lambda_invoke import INVOKE_PATH, InvokeApi
from local.lambda_runtime import (
    GatewayError,
    LambdaFunction,
    import_module_from,  # noqa: F401 (its old home: tests import it from here)
    lambda_functions,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
TEXT_MEDIA_TYPES = {"application/json", "application/javascript", "application/xml"}

logger = logging.getLogger("voiceline.gateway")


class CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation short tags (!Ref, !Sub, !GetAtt...) as their long forms, so a template parses."""


def _construct_intrinsic(loader: CloudFormationLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CloudFormationLoader)


@dataclass(frozen=True)
class HttpRoute:
    """One HttpApi event: a method and a path template, e.g. `GET /calls/{call_sid}`, or `$default`."""

    method: str
    path: str
    function: LambdaFunction

    @property
    def route_key(self) -> str:
        return self.path if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, ...]:
        """Sort key: API Gateway prefers literal paths, then {params}, then {greedy+}, then $default."""
        return (self.path == "$default", self.path.count("+}"), self.path.count("{"), -len(self.path),
                self.method == "ANY")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when the request matches this route, else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path == "$default":
            return {}
        names, pattern = [], ""
        for part in re.split(r"({[^}]+})", self.path):
            if part.startswith("{"):
                names.append(part[1:-1].rstrip("+"))
                pattern += "(.+)" if part.endswith("+}") else "([^/]+)"
            else:
                pattern += re.escape(part)
        found = re.fullmatch(pattern, path)
        return None if found is None else dict(zip(names, found.groups(), strict=True))


def http_routes(functions: list[LambdaFunction]) -> list[HttpRoute]:
    """The HttpApi routes, most specific first."""
    routes = []
    for function in functions:
        for event in function.events.values():
            if event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            if str(properties.get("PayloadFormatVersion", "2.0")) != "2.0":
                raise GatewayError(f"{function.name}: the local gateway speaks payload format 2.0 only")
            if "Path" in properties:
                routes.append(HttpRoute(str(properties.get("Method", "ANY")).upper(), properties["Path"], function))
            else:
                routes.append(HttpRoute("ANY", "$default", function))
    return sorted(routes, key=lambda route: route.specificity)


def is_text(content_type: str) -> bool:
    """Whether API Gateway passes the body as text; anything else arrives base64-encoded."""
    media_type = content_type.split(";")[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES or media_type.endswith(("+json", "+xml"))


def api_gateway_event(request: Request, body: bytes, route: HttpRoute,
                      path_parameters: dict[str, str]) -> dict[str, Any]:
    """The HTTP API payload v2.0 event API Gateway would send for this request."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in request.headers.raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    client_ip = request.client.host if request.client else "127.0.0.1"
    headers["x-forwarded-for"] = f"{headers['x-forwarded-for']}, {client_ip}" if "x-forwarded-for" in headers \
        else client_ip
    headers["x-forwarded-proto"] = request.url.scheme
    headers["x-forwarded-port"] = str(request.scope["server"][1])
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    domain = headers.get("host", "localhost").split(":")[0]
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
        "rawQueryString": request.url.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {"method": request.method, "path": request.url.path,
                     "protocol": f"HTTP/{request.scope['http_version']}", "sourceIp": client_ip,
                     "userAgent": headers.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        if is_text(headers.get("content-type", "")):
            event["body"] = body.decode("utf-8", errors="replace")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def http_response(result: Any) -> Response:
    """The HTTP response API Gateway makes of a handler's return value (payload format 2.0)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # API Gateway treats a reply without statusCode as a 200 JSON body.
        return Response(json.dumps(result), 200, media_type="application/json")
    body = result.get("body") or ""
    content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    response = Response(content, int(result["statusCode"]))
    response.raw_headers.extend(
        (name.lower().encode("latin-1"), str(value).encode("latin-1"))
        for name, value in (result.get("headers") or {}).items() if name.lower() != "content-length")
    response.raw_headers.extend((b"set-cookie", cookie.encode("latin-1")) for cookie in result.get("cookies") or [])
    return response


class Gateway:
    """Routes requests to functions the way API Gateway's HTTP API does."""

    def __init__(self, routes: list[HttpRoute]) -> None:
        self.routes = routes

    async def handle(self, request: Request) -> Response:
        for route in self.routes:
            path_parameters = route.match(request.method, request.url.path)
            if path_parameters is not None:
                break
        else:
            return JSONResponse({"message": "Not Found"}, 404)
        event = api_gateway_event(request, await request.body(), route, path_parameters)
        try:
            result = await run_in_threadpool(route.function.invoke, event)
            return http_response(result)
        except Exception:
            logger.exception("%s failed on %s %s", route.function.name, request.method, request.url.path)
            return JSONResponse({"message": "Internal Server Error"}, 500)


def build_app(template_path: Path = DEFAULT_TEMPLATE) -> Starlette:
    """The gateway as an ASGI app: the template's HttpApi routes, and the Invoke API for all its functions."""
    template_path = Path(template_path).resolve()
    functions = lambda_functions(load_template(template_path), template_path.parent)
    gateway = Gateway(http_routes(functions))
    for route in gateway.routes:
        logger.info("route %s -> %s", route.route_key, route.function.name)
    invoke_api = InvokeApi(functions)
    for function in functions:
        logger.info("invoke %s (%s)", function.deployed_name, function.name)
    return Starlette(routes=[Route(INVOKE_PATH, invoke_api.handle, methods=["POST"]),
                             Route("/{path:path}", gateway.handle, methods=HTTP_METHODS)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve template.yaml's HttpApi routes locally, without Docker.")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=GATEWAY_PORT)
    args = parser.parse_args(argv)
    os.environ.update(local_environment())
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logger.setLevel(logging.INFO)
    # API Gateway sets X-Forwarded-* itself and never trusts a client's, so neither does the gateway.
    uvicorn.run(build_app(args.template), host=args.host, port=args.port, lifespan="off", proxy_headers=False)


if __name__ == "__main__":
    main()
