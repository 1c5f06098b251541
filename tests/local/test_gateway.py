"""The local gateway over real HTTP: template routes, API Gateway v2 events and replies, the real webhook handler,
and the Lambda Invoke API as boto3 sees it."""

from __future__ import annotations

import base64
import json
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from local.asgi_server import ThreadedServer
from local.gateway import (
    DEFAULT_TEMPLATE,
    build_app,
    http_routes,
    lambda_functions,
    load_template,
)
from voiceline.calls import get_call
from voiceline.models import Agent, PhoneNumber

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS_CODE = ROOT / "functions" / "webhooks"

ECHO_HANDLER = '''
import base64
import json


def lambda_handler(event, context):
    path = event["rawPath"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/bare":
        return {"hello": "world"}
    if path == "/bytes":
        return {"statusCode": 201, "headers": {"Content-Type": "image/png"}, "cookies": ["a=1", "b=2; Path=/"],
                "body": base64.b64encode(b"\\x89PNG\\x00\\xff").decode(), "isBase64Encoded": True}
    reply = {"event": event, "function_name": context.function_name,
             "remaining_ms": context.get_remaining_time_in_millis()}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(reply)}
'''

FUNCTION_HANDLER = '''
import time
from pathlib import Path


def wait_for(path, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.005)


def lambda_handler(event, context):
    action = event.get("action")
    if action == "raise":
        raise ValueError("no price for " + event["service"])
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "set":
        return {1, 2}
    if action == "touch":
        Path(event["path"]).touch()
    if action == "meet":  # run until every party has arrived: only concurrent invocations all return
        Path(event["dir"], event["me"]).touch()
        for other in event["parties"]:
            wait_for(Path(event["dir"], other))
    if action == "hold":  # say it started, then hold the environment until released
        Path(event["started"]).touch()
        wait_for(event["release"])
    return {"event": event, "function_name": context.function_name, "module": __name__}
'''

TEMPLATE = '''
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Kind: {Type: String, Default: tool}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Globals:
  Function:
    Runtime: python3.13
    Handler: app.lambda_handler
    Timeout: 7
    Architectures: [arm64]
Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo
      Role: !GetAtt EchoRole.Arn
      Environment:
        Variables:
          TABLE: !Ref Table
          URL: !Sub "https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com"
          NAME: !If [IsProd, !Join ["-", [a, b]], !Select [0, [c, d]]]
      Events:
        Echo: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: "/echo/{name}", Method: ANY}}
        Literal: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: /echo/literal, Method: GET}}
        Files: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: "/files/{proxy+}", Method: GET}}
        Bytes: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: /bytes, Method: GET}}
        Bare: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: /bare, Method: GET}}
        Boom: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: /boom, Method: POST}}
  WebhooksFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: WEBHOOKS_CODE
      Layers: [!Ref CoreLayer]
      Events:
        Voice: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: /twilio/voice, Method: POST}}
        Status: {Type: HttpApi, Properties: {ApiId: !Ref HttpApi, Path: /twilio/status, Method: POST}}
  PricingFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-get-pricing"
      CodeUri: tool
      Timeout: 1
  ExclusiveFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub ["${AWS::StackName}-${Kind}-exclusive", {Kind: !Ref Kind}]
      CodeUri: tool
      ReservedConcurrentExecutions: 1
  DisabledFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: disabled
      CodeUri: tool
      ReservedConcurrentExecutions: 0
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/core
'''


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "app.py").write_text(textwrap.dedent(ECHO_HANDLER))
    (tmp_path / "tool").mkdir()
    (tmp_path / "tool" / "app.py").write_text(FUNCTION_HANDLER)
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE.replace("WEBHOOKS_CODE", str(WEBHOOKS_CODE)))
    return path


@pytest.fixture
def gateway(template: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(build_app(template)) as server:
        yield server


@pytest.fixture
def client(gateway: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def echoed(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["event"]


def test_template_short_tags_load_as_intrinsic_functions(template: Path) -> None:
    loaded = load_template(template)

    variables = loaded["Resources"]["EchoFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["TABLE"] == {"Ref": "Table"}
    assert variables["URL"] == {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com"}
    assert variables["NAME"] == {"Fn::If": ["IsProd", {"Fn::Join": ["-", ["a", "b"]]},
                                            {"Fn::Select": [0, ["c", "d"]]}]}
    assert loaded["Resources"]["EchoFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["EchoRole", "Arn"]}


def test_routes_come_from_http_api_events_with_global_defaults(template: Path) -> None:
    functions = lambda_functions(load_template(template), template.parent)
    routes = {route.route_key: route.function for route in http_routes(functions)}

    assert routes.keys() == {"ANY /echo/{name}", "GET /echo/literal", "GET /files/{proxy+}", "GET /bytes",
                             "GET /bare", "POST /boom", "POST /twilio/voice", "POST /twilio/status"}
    webhooks = routes["POST /twilio/voice"]
    assert (webhooks.name, webhooks.code_dir, webhooks.handler) == ("WebhooksFunction", WEBHOOKS_CODE,
                                                                    "app.lambda_handler")
    assert routes["GET /bytes"].timeout_s == 7


def test_request_becomes_an_http_api_v2_event(client: httpx.Client, gateway: ThreadedServer) -> None:
    response = client.get("/echo/alice?x=1&x=2&empty=", headers={"X-Custom": "Yes", "Cookie": "s=1; t=2"})

    event = echoed(response)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /echo/{name}"
    assert (event["rawPath"], event["rawQueryString"]) == ("/echo/alice", "x=1&x=2&empty=")
    assert event["pathParameters"] == {"name": "alice"}
    assert event["queryStringParameters"] == {"x": "1,2", "empty": ""}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["headers"]["x-custom"] == "Yes"
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["headers"]["x-forwarded-port"] == gateway.url.rsplit(":", 1)[1]
    context = event["requestContext"]
    assert (context["http"]["method"], context["http"]["path"], context["stage"]) == ("GET", "/echo/alice", "$default")
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert "body" not in event and event["isBase64Encoded"] is False
    assert response.json()["function_name"] == "EchoFunction"
    assert 0 < response.json()["remaining_ms"] <= 7000


def test_literal_route_wins_over_a_path_parameter(client: httpx.Client) -> None:
    assert echoed(client.get("/echo/literal"))["routeKey"] == "GET /echo/literal"
    assert echoed(client.post("/echo/literal"))["routeKey"] == "ANY /echo/{name}"


def test_greedy_path_parameter_takes_the_rest_of_the_path(client: httpx.Client) -> None:
    assert echoed(client.get("/files/a/b/c.txt"))["pathParameters"] == {"proxy": "a/b/c.txt"}


def test_binary_and_form_bodies_arrive_base64_and_json_as_text(client: httpx.Client) -> None:
    binary = echoed(client.put("/echo/x", content=b"\x00\xffraw", headers={"Content-Type": "application/octet-stream"}))
    form = echoed(client.post("/echo/x", data={"CallSid": "CA1", "To": "+15550100"}))
    text = echoed(client.post("/echo/x", json={"a": 1}))

    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x00\xffraw"
    assert form["isBase64Encoded"] is True
    assert base64.b64decode(form["body"]) == b"CallSid=CA1&To=%2B15550100"
    assert (text["isBase64Encoded"], json.loads(text["body"])) == (False, {"a": 1})


def test_base64_reply_is_decoded_and_cookies_become_set_cookie_headers(client: httpx.Client) -> None:
    response = client.get("/bytes")

    assert response.status_code == 201
    assert response.content == b"\x89PNG\x00\xff"
    assert response.headers["content-type"] == "image/png"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2; Path=/"]


def test_reply_without_status_code_becomes_a_json_200(client: httpx.Client) -> None:
    response = client.get("/bare")

    assert (response.status_code, response.json()) == (200, {"hello": "world"})
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("GET", "/twilio/voice"), ("GET", "/")])
def test_unknown_route_is_not_found(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)

    assert (response.status_code, response.json()) == (404, {"message": "Not Found"})


def test_handler_exception_is_an_internal_server_error(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    response = client.post("/boom")

    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})
    failure = next(record for record in caplog.records if record.name == "voiceline.gateway" and record.exc_info)
    assert "EchoFunction" in failure.getMessage()


def test_handler_code_dir_is_on_sys_path_only_while_importing(client: httpx.Client, template: Path) -> None:
    echoed(client.get("/echo/x"))

    assert str(template.parent / "echo") not in sys.path


def test_signed_voice_webhook_through_the_gateway_answers_twiml(
        dynamodb: None, client: httpx.Client, gateway: ThreadedServer, twilio_signer: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLIC_WEBHOOK_BASE_URL", raising=False)
    Agent("agent-gw", tenant_id="tenant-gw", name="Ava", instructions="Help.", greeting="Hi").save()
    PhoneNumber("+15550100", agent_id="agent-gw", tenant_id="tenant-gw").save()
    form = {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "0" * 32, "From": "+15551234567", "To": "+15550100",
            "Direction": "inbound", "CallStatus": "ringing"}
    url = f"{gateway.url}/twilio/voice"

    answered = client.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": twilio_signer.sign(url, form)})
    forged = client.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": "forged="})

    assert answered.status_code == 200, answered.text
    assert answered.headers["content-type"] == "text/xml"
    assert "<Stream url=" in answered.text and 'name="streamToken"' in answered.text
    assert get_call(form["CallSid"]).agent_id == "agent-gw"
    assert forged.status_code == 403


@pytest.mark.skipif(not DEFAULT_TEMPLATE.exists(), reason="template.yaml not written yet")
def test_real_template_routes_twilio_webhooks_to_the_webhooks_function() -> None:
    functions = lambda_functions(load_template(DEFAULT_TEMPLATE), DEFAULT_TEMPLATE.parent)
    routes = {route.route_key: route.function for route in http_routes(functions)}

    for route_key in ("POST /twilio/voice", "POST /twilio/status"):
        assert routes[route_key].code_dir == WEBHOOKS_CODE
        assert routes[route_key].handler == "app.lambda_handler"


# ---- the Lambda Invoke API -------------------------------------------------------------------------------


@pytest.fixture
def lambda_client(gateway: ThreadedServer) -> Any:
    """boto3's own client, changed only by the endpoint the bridge sets through AWS_ENDPOINT_URL_LAMBDA."""
    return boto3.client("lambda", endpoint_url=gateway.url, region_name="us-east-1",
                        config=Config(read_timeout=10, retries={"total_max_attempts": 1}))


def invoke(lambda_client: Any, name: str, event: dict[str, Any], **options: Any) -> tuple[dict[str, Any], Any]:
    response = lambda_client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **options)
    return response, json.loads(response["Payload"].read() or b"null")


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait for something another thread does; the only signal a background handler leaves is a file."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def test_boto3_invokes_a_function_by_its_rendered_function_name(lambda_client: Any) -> None:
    event = {"tool": "get_pricing", "arguments": {"service": "tap repair"}}

    response, payload = invoke(lambda_client, "voiceline-get-pricing", event)

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert payload["event"] == event
    assert payload["function_name"] == "voiceline-get-pricing"


@pytest.mark.parametrize("name", [
    "arn:aws:lambda:us-east-1:123456789012:function:voiceline-get-pricing",
    "123456789012:function:voiceline-get-pricing",
    "voiceline-get-pricing:$LATEST",
    "PricingFunction",
    "voiceline-tool-exclusive",
])
def test_function_is_found_by_arn_qualified_name_or_logical_id(lambda_client: Any, name: str) -> None:
    response, payload = invoke(lambda_client, name, {"n": 1})

    assert (response["StatusCode"], payload["event"]) == (200, {"n": 1})


def test_stack_name_for_function_names_comes_from_stack_name(template: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_NAME", "staging")
    with ThreadedServer(build_app(template)) as server:
        client = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1")
        _, payload = invoke(client, "staging-get-pricing", {})
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="voiceline-get-pricing")

    assert payload["function_name"] == "staging-get-pricing"


@pytest.mark.parametrize("name", ["voiceline-nothing", "arn:aws:lambda:us-east-1:123456789012:function:nothing",
                                  "voiceline-get-pricing:7"])
def test_unknown_function_is_resource_not_found(lambda_client: Any, name: str) -> None:
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as raised:
        lambda_client.invoke(FunctionName=name, Payload=b"{}")

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Function not found" in raised.value.response["Error"]["Message"]


def test_handler_exception_is_an_unhandled_function_error_with_the_handlers_stack(lambda_client: Any) -> None:
    response, payload = invoke(lambda_client, "voiceline-get-pricing", {"action": "raise", "service": "roofing"})

    assert (response["StatusCode"], response["FunctionError"]) == (200, "Unhandled")
    assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "no price for roofing")
    assert payload["stackTrace"] and all("app.py" in line for line in payload["stackTrace"])


def test_handler_past_its_timeout_is_a_timed_out_function_error(lambda_client: Any) -> None:
    started = time.monotonic()
    response, payload = invoke(lambda_client, "voiceline-get-pricing", {"action": "sleep", "seconds": 3})

    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert time.monotonic() - started < 2.5  # the 1 s timeout, not the 3 s sleep


def test_result_that_is_not_json_is_a_marshal_error(lambda_client: Any) -> None:
    response, payload = invoke(lambda_client, "voiceline-get-pricing", {"action": "set"})

    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.MarshalError"


def test_payload_that_is_not_json_is_refused(lambda_client: Any) -> None:
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException):
        lambda_client.invoke(FunctionName="voiceline-get-pricing", Payload=b"{not json")


def test_event_invocation_is_accepted_at_once_and_runs_in_the_background(lambda_client: Any,
                                                                         tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    response = lambda_client.invoke(FunctionName="voiceline-get-pricing", InvocationType="Event",
                                    Payload=json.dumps({"action": "touch", "path": str(marker)}).encode())

    assert response["StatusCode"] == 202
    eventually(marker.exists)


def test_dry_run_checks_the_function_without_running_it(lambda_client: Any, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    response = lambda_client.invoke(FunctionName="voiceline-get-pricing", InvocationType="DryRun",
                                    Payload=json.dumps({"action": "touch", "path": str(marker)}).encode())

    assert response["StatusCode"] == 204
    assert not marker.exists()


def test_concurrent_invocations_run_side_by_side_in_separate_environments(lambda_client: Any,
                                                                          tmp_path: Path) -> None:
    parties = ["a", "b", "c"]
    events = [{"action": "meet", "dir": str(tmp_path), "me": me, "parties": parties} for me in parties]

    with ThreadPoolExecutor(len(parties)) as pool:
        results = list(pool.map(lambda event: invoke(lambda_client, "voiceline-get-pricing", event), events))

    assert all("FunctionError" not in response for response, _ in results)
    assert len({payload["module"] for _, payload in results}) == len(parties)


def test_invocation_beyond_the_reserved_concurrency_is_throttled(lambda_client: Any, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    hold = {"action": "hold", "started": str(started), "release": str(release)}

    with ThreadPoolExecutor(1) as pool:
        holding = pool.submit(invoke, lambda_client, "voiceline-tool-exclusive", hold)
        eventually(started.exists)
        with pytest.raises(lambda_client.exceptions.TooManyRequestsException) as throttled:
            lambda_client.invoke(FunctionName="voiceline-tool-exclusive", Payload=b"{}")
        release.touch()
        holding.result(timeout=5)
    after, _ = invoke(lambda_client, "voiceline-tool-exclusive", {})

    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert throttled.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert after["StatusCode"] == 200


def test_reserved_concurrency_of_zero_throttles_every_invocation(lambda_client: Any) -> None:
    with pytest.raises(lambda_client.exceptions.TooManyRequestsException):
        lambda_client.invoke(FunctionName="disabled", Payload=b"{}")
