"""A tool that keeps failing is taken away for the rest of the call; the model is told, the call goes on.

Real sockets throughout: the bridge under uvicorn, the tool Lambda behind the local gateway's Invoke
API, and a small Realtime peer that keeps calling the tool the way a model would.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from local.asgi_server import serving
from local.gateway import build_app
from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, ended_call, running_bridge
from tests.conftest import TwilioSigner
from voiceline import calls
from voiceline.models import Agent

# search_knowledge fails for the query "fail" and answers otherwise; every invocation leaves a line.
HANDLER = """from pathlib import Path

def lambda_handler(event, context):
    with Path({log!r}).open("a") as log:
        log.write(event["arguments"]["query"] + "\\n")
    if event["arguments"]["query"] == "fail":
        raise RuntimeError("search index unreadable")
    return {{"ok": True, "output": {{"passages": []}}}}
"""
# What the model asks, response by response: two failures, an answer (the count starts again), three failures
# (the tool is disabled), and one more call made before the model heard, which must not reach the Lambda.
QUERIES = ["fail", "fail", "hours", "fail", "fail", "fail", "fail"]


@pytest.fixture
async def tool_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    code = tmp_path / "search-knowledge"
    code.mkdir()
    invocations = tmp_path / "invocations.log"
    (code / "app.py").write_text(HANDLER.format(log=str(invocations)))
    (tmp_path / "template.yaml").write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\nResources:\n'
        "  SearchKnowledge:\n    Type: AWS::Serverless::Function\n"
        f"    Properties: {{FunctionName: voiceline-search-knowledge, CodeUri: {code}, Runtime: python3.13,"
        " Handler: app.lambda_handler, Timeout: 5}\n")
    async with serving(build_app(tmp_path / "template.yaml"), lifespan="off") as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", url)
        yield invocations


class PersistentModel:
    """Calls search_knowledge in every response for QUERIES, then speaks; keeps what the bridge sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.responses = 0

    async def handle(self, socket: ServerConnection) -> None:
        async for raw in socket:
            event = json.loads(raw)
            self.received.append(event)
            if event["type"] == "response.create":
                await self._respond(socket)

    async def _respond(self, socket: ServerConnection) -> None:
        self.responses += 1
        response_id = f"resp_{self.responses}"
        await socket.send(json.dumps({"type": "response.created", "response": {"id": response_id}}))
        if self.responses <= len(QUERIES):
            output = [{"type": "function_call", "status": "completed", "call_id": f"call_{self.responses}",
                       "name": "search_knowledge",
                       "arguments": json.dumps({"query": QUERIES[self.responses - 1]})}]
        else:
            output = []
            await socket.send(json.dumps({"type": "response.output_audio.delta", "response_id": response_id,
                                          "item_id": "item_sorry", "delta": base64.b64encode(b"\x10" * 800).decode()}))
        await socket.send(json.dumps({"type": "response.done", "response": {"id": response_id, "output": output}}))

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {event["item"]["call_id"]: json.loads(event["item"]["output"]) for event in self.received
                if event["type"] == "conversation.item.create" and event["item"]["type"] == "function_call_output"}


async def test_a_tool_failing_three_times_in_a_row_is_taken_from_the_model_and_never_invoked_again(
        dynamodb: None, tool_functions: Path, monkeypatch: pytest.MonkeyPatch, twilio_signer: TwilioSigner) -> None:
    Agent(AGENT, tenant_id=TENANT, name="Ava", business_name="Acme", instructions="Help", greeting="Hello",
          tools=["search_knowledge", "end_call"], max_duration_s=60, silence_timeout_s=60).save()
    calls.create_call("CA501", TENANT, AGENT, "+15551230000", "+15550100")
    model = PersistentModel()
    async with serve(model.handle, "127.0.0.1", 0) as server:
        model_url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime"
        async with running_bridge(model_url, monkeypatch) as url, TwilioLeg.open(url, twilio_signer, "CA501") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
            await asyncio.wait_for(leg.first_media.wait(), 20)  # the model went on to speak
            await leg.hang_up()
            await listening

    outputs = model.outputs()
    assert [outputs[f"call_{n}"]["error"]["type"] if not outputs[f"call_{n}"]["ok"] else "ok"
            for n in range(1, 8)] == ["lambda_error", "lambda_error", "ok", "lambda_error", "lambda_error",
                                      "lambda_error", "tool_disabled"]
    assert tool_functions.read_text().split() == QUERIES[:6]  # the seventh call never reached the Lambda
    updates = [event["session"] for event in model.received if event["type"] == "session.update"]
    assert [tool["name"] for tool in updates[0]["tools"]] == ["search_knowledge", "end_call"]
    assert updates[1:] == [{"type": "realtime", "tools": [updates[0]["tools"][1]]}]  # only the tools change
    # The update reached the model before it was asked for the response after the sixth output.
    order = [event["item"].get("call_id") if event["type"] == "conversation.item.create" else event["type"]
             for event in model.received]
    sixth = order.index("call_6")
    assert sixth < order.index("session.update", 1) < order.index("response.create", sixth)

    call = await ended_call("CA501")
    assert call.end_reason == "caller_hung_up"
    [disabled] = [event for event in calls.list_events("CA501") if event.kind == "tool_disabled"]
    assert disabled.data == {"name": "search_knowledge", "failures_in_a_row": 3}
    assert call.tools["search_knowledge"]["calls"] == 7 and call.tools["search_knowledge"]["failed"] == 6
