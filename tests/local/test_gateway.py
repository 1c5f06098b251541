"""The local gateway over real HTTP: template routes, API Gateway v2 events and replies, the real webhook handler."""

from __future__ import annotations

import base64
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.gateway import (
    DEFAULT_TEMPLATE,
    GatewayServer,
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

TEMPLATE = '''
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
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
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/core
'''


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "app.py").write_text(textwrap.dedent(ECHO_HANDLER))
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE.replace("WEBHOOKS_CODE", str(WEBHOOKS_CODE)))
    return path


@pytest.fixture
def gateway(template: Path) -> Iterator[GatewayServer]:
    with GatewayServer(build_app(template)) as server:
        yield server


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
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


def test_request_becomes_an_http_api_v2_event(client: httpx.Client, gateway: GatewayServer) -> None:
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
    assert event["headers"]["x-forwarded-port"] == str(gateway.port)
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
        dynamodb: None, client: httpx.Client, gateway: GatewayServer, twilio_signer: Any,
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
