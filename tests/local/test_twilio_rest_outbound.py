"""The Twilio REST stand-in placing calls (`POST …/Calls.json`): the call simulator picks up as the callee, the
signed voice webhook carries Direction and AnsweredBy, the TwiML's media stream runs, the agent's REST hang-up
reaches the phone in-process, and the status callback closes the call. The far end here is a small fake of an
application that answers Twilio, so only the stand-in is under test."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from twilio.request_validator import RequestValidator

from local.asgi_server import serving
from local.twilio_outbound import Callee
from local.twilio_rest import TwilioRestStandIn

ACCOUNT_SID = "AC" + "9" * 32
AUTH_TOKEN = "outbound-token"
OUR_NUMBER = "+14155550100"
CALLEE = "+15557654321"
WAIT_S = 10.0
HANG_UP_TWIML = "<Response><Say>Sorry we missed you.</Say><Hangup/></Response>"


@dataclass
class FarEnd:
    """An application Twilio calls: it answers with a media stream (or `twiml`) and hangs up over REST."""

    twilio_url: str = ""
    twiml: str | None = None
    url: str = ""
    webhooks: list[tuple[str, dict[str, str], bool]] = field(default_factory=list)  # path, form, signature ok
    stream_messages: list[dict[str, Any]] = field(default_factory=list)
    hang_up_answer: dict[str, Any] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/voice", self.voice, methods=["POST"]),
                                 Route("/status", self.status, methods=["POST"]),
                                 WebSocketRoute("/media", self.media)])

    async def _hook(self, request: Request) -> dict[str, str]:
        form = dict(parse_qsl((await request.body()).decode()))
        valid = RequestValidator(AUTH_TOKEN).validate(str(request.url), form,
                                                      request.headers.get("x-twilio-signature", ""))
        self.webhooks.append((request.url.path, form, valid))
        return form

    async def voice(self, request: Request) -> Response:
        await self._hook(request)
        stream = f'<Response><Connect><Stream url="{self.url.replace("http", "ws", 1)}/media"/></Connect></Response>'
        return Response(self.twiml or stream, media_type="text/xml")

    async def status(self, request: Request) -> Response:
        await self._hook(request)
        return Response(status_code=204)

    async def media(self, websocket: WebSocket) -> None:
        """Take the stream's start, then hang the call up through Twilio's REST API, as the bridge does."""
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while (message := json.loads(await websocket.receive_text()))["event"] != "start":
                self.stream_messages.append(message)
            self.stream_messages.append(message)
            call_sid = message["start"]["callSid"]
            async with httpx.AsyncClient(auth=(ACCOUNT_SID, AUTH_TOKEN)) as http:
                answer = await http.post(f"{self.twilio_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json",
                                         data={"Status": "completed"})
            self.hang_up_answer = answer.json()
            while True:
                self.stream_messages.append(json.loads(await websocket.receive_text()))


@dataclass
class Line:
    far_end: FarEnd
    stand_in: TwilioRestStandIn
    twilio: httpx.AsyncClient

    async def dial(self, **form: str) -> dict[str, Any]:
        fields = {"To": CALLEE, "From": OUR_NUMBER, "Url": f"{self.far_end.url}/voice",
                  "StatusCallback": f"{self.far_end.url}/status", **form}
        response = await self.twilio.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", data=fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def outcome(self, call_sid: str) -> dict[str, Any]:
        outcome = (await self.twilio.get(f"/local/calls/{call_sid}", params={"wait": WAIT_S})).json()
        assert outcome["settled"], outcome
        return outcome


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Line]:
    (tmp_path / "hello.ulaw").write_bytes(b"\x10" * 800)
    (tmp_path / "callee.json").write_text(json.dumps({"opening": {"text": "Hello?", "audio": "hello.ulaw"},
                                                      "greeting": {"text": "-", "audio": "hello.ulaw"},
                                                      "turns": []}))
    stand_in = TwilioRestStandIn(ACCOUNT_SID, AUTH_TOKEN, owned=[OUR_NUMBER], max_call_seconds=5,
                                 callee=Callee(conversation=tmp_path / "callee.json", audio_dir=tmp_path))
    far_end = FarEnd()
    async with serving(stand_in.app()) as twilio_url, serving(far_end.app()) as far_end_url, \
            httpx.AsyncClient(base_url=twilio_url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=WAIT_S + 5) as twilio:
        far_end.twilio_url, far_end.url = twilio_url, far_end_url
        yield Line(far_end, stand_in, twilio)


async def test_a_placed_call_is_answered_streamed_hung_up_by_the_agent_and_reported(line: Line) -> None:
    created = await line.dial(MachineDetection="Enable")
    assert (created["status"], created["direction"], created["from"], created["to"]) == (
        "queued", "outbound-api", OUR_NUMBER, CALLEE)

    outcome = await line.outcome(created["sid"])

    (voice_path, voice, voice_signed), (status_path, status, status_signed) = line.far_end.webhooks
    assert (voice_path, status_path, voice_signed, status_signed) == ("/voice", "/status", True, True)
    assert (voice["CallSid"], voice["Direction"], voice["From"], voice["To"], voice["AnsweredBy"],
            voice["CallStatus"]) == (created["sid"], "outbound-api", OUR_NUMBER, CALLEE, "human", "in-progress")
    assert (status["CallStatus"], status["AnsweredBy"]) == ("completed", "human")
    start = next(message for message in line.far_end.stream_messages if message["event"] == "start")
    assert start["start"]["callSid"] == created["sid"]
    assert line.far_end.stream_messages[-1]["event"] == "stop"

    report = outcome["report"]
    assert (report["outcome"], report["ended_by"]) == ("completed", "agent_hung_up")
    assert report["turns"][0]["caller_text"] == "Hello?"  # the callee spoke first
    assert line.far_end.hang_up_answer["status"] == "completed"
    assert (outcome["call"]["status"], outcome["call"]["answered_by"]) == ("completed", "human")
    assert outcome["updates"] == [{"Status": "completed"}]


@pytest.mark.parametrize(("answers", "mode", "answered_by"), [
    ("machine", "Enable", "machine_start"),
    ("machine", "DetectMessageEnd", "machine_end_beep"),
    ("fax", "Enable", "fax"),
    ("unknown", "DetectMessageEnd", "unknown"),
])
async def test_answering_machine_detection_tells_who_answered(line: Line, answers: str, mode: str,
                                                              answered_by: str) -> None:
    line.far_end.twiml = HANG_UP_TWIML
    assert (await line.twilio.put(f"/local/callees/{CALLEE}", json={"answers": answers})).status_code == 200

    created = await line.dial(MachineDetection=mode)
    outcome = await line.outcome(created["sid"])

    assert line.far_end.webhooks[0][1]["AnsweredBy"] == answered_by
    assert (outcome["report"]["outcome"], outcome["report"]["spoken_text"]) == ("rejected", "Sorry we missed you.")


async def test_without_machine_detection_there_is_no_answered_by(line: Line) -> None:
    line.far_end.twiml = HANG_UP_TWIML
    await line.twilio.put(f"/local/callees/{CALLEE}", json={"answers": "machine"})
    outcome = await line.outcome((await line.dial())["sid"])
    assert "AnsweredBy" not in line.far_end.webhooks[0][1]
    assert outcome["call"]["answered_by"] is None


@pytest.mark.parametrize("answers", ["busy", "no-answer", "failed"])
async def test_a_callee_who_never_picks_up_gets_only_the_final_status(line: Line, answers: str) -> None:
    await line.twilio.put(f"/local/callees/{CALLEE}", json={"answers": answers})
    outcome = await line.outcome((await line.dial(MachineDetection="Enable"))["sid"])
    assert [(path, form["CallStatus"], form["CallDuration"]) for path, form, _ in line.far_end.webhooks] == [
        ("/status", answers, "0")]
    assert (outcome["call"]["status"], outcome["report"]["outcome"]) == (answers, "unanswered")


async def test_a_call_with_no_status_callback_sends_none(line: Line) -> None:
    line.far_end.twiml = HANG_UP_TWIML
    created = await line.dial(StatusCallback="")
    await line.outcome(created["sid"])
    assert [path for path, _, _ in line.far_end.webhooks] == ["/voice"]


async def test_a_callee_setting_can_be_reset_and_must_make_sense(line: Line) -> None:
    url = f"/local/callees/{CALLEE}"
    assert (await line.twilio.put(url, json={"answers": "robot"})).status_code == 400
    assert (await line.twilio.put(url, json={"conversation": "../../etc/passwd"})).status_code == 400
    assert (await line.twilio.put(url, json={"conversation": "outbound.json"})).json()["conversation"] == \
        "outbound.json"
    assert (await line.twilio.delete(url)).status_code == 204
    assert CALLEE not in line.stand_in.callees


@pytest.mark.parametrize(("form", "code"), [
    ({"To": ""}, 21201),
    ({"From": ""}, 21213),
    ({"To": "555-1234"}, 21211),
    ({"From": "+19995550100"}, 21210),
    ({"Url": ""}, 21205),
    ({"MachineDetection": "Sometimes"}, 21624),
], ids=["no-to", "no-from", "bad-to", "from-not-ours", "no-url", "bad-machine-detection"])
async def test_a_call_twilio_would_not_place_is_refused_with_its_code(line: Line, form: dict[str, str],
                                                                      code: int) -> None:
    fields = {"To": CALLEE, "From": OUR_NUMBER, "Url": f"{line.far_end.url}/voice", **form}
    response = await line.twilio.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", data=fields)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert line.stand_in.calls == {}


async def test_asking_after_a_call_nobody_placed_is_a_404_and_a_bad_wait_a_400(line: Line) -> None:
    assert (await line.twilio.get("/local/calls/CA" + "0" * 32)).status_code == 404
    created = await line.dial()
    assert (await line.twilio.get(f"/local/calls/{created['sid']}", params={"wait": "soon"})).status_code == 400
    await line.outcome(created["sid"])


async def test_an_unreachable_url_fails_the_call(line: Line) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    outcome = await line.outcome((await line.dial(Url=f"http://127.0.0.1:{closed}/voice"))["sid"])
    assert outcome["call"]["status"] == "failed" and "ConnectError" in outcome["error"]
