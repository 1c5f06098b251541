"""The call simulator against a fake gateway and bridge on loopback: it must behave like Twilio."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import re
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI, Request, Response, WebSocket
from twilio.request_validator import RequestValidator

from local import mulaw
from local.asgi_server import serving as serve_app
from local.call_simulator import CallConfig, CallReport, place_call

TOKEN = "test-auth-token"
ACCOUNT_SID = "AC" + "1" * 32
KNOWN_NUMBER = "+15550100"
STREAM_PARAMETERS = {"callSid": "from-twiml", "agentId": "agent-1", "streamToken": "tok.en"}
CALLER_LINES = ["I have a leaking tap.", "Sorry, tomorrow morning?"]
MALFORMED = ["not json", '{"event":"bogus"}', '{"event":"media","media":{"payload":"%%%"}}', "x" * 70_000, b"\x00\xff"]
WAIT_S = 5.0
PACE_TOLERANCE_S = 0.03  # event-loop jitter on a busy machine


def tone(duration_ms: int, hz: int = 440) -> bytes:
    samples = duration_ms * 8
    return mulaw.encode([int(8000 * math.sin(2 * math.pi * hz * n / 8000)) for n in range(samples)])


@dataclass
class SentMark:
    burst_started: float  # when the first delta of this stretch of speech was sent
    audio_ms_before: int  # audio of that stretch queued before the mark


@dataclass
class Received:
    at: float
    raw: str | bytes
    message: dict[str, Any] | None  # None when not JSON


class FakeBridgePeer:
    """The bridge's end of the media stream: records everything the phone sends and speaks on cue."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.received: list[Received] = []
        self.caller_audio = bytearray()
        self.marks_sent: dict[str, SentMark] = {}
        self.mark_echoes: dict[str, float] = {}
        self.clears: list[tuple[float, list[str]]] = []  # (sent at, marks pending then)
        self.speech_starts = 0
        self.speech_ends = 0
        self._silent_frames = 0
        self._in_speech = False
        self._changed = asyncio.Condition()
        self.stream_sid = ""

    @property
    def media(self) -> list[Received]:
        """The phone's media frames (the malformed one has no sequenceNumber)."""
        return [r for r in self.received if r.message and r.message.get("event") == "media"
                and "sequenceNumber" in r.message]

    @property
    def malformed(self) -> list[Received]:
        return [r for r in self.received if r.message is None or r.message.get("event") == "bogus"
                or (r.message.get("event") == "media" and "sequenceNumber" not in r.message)]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = await self.websocket.receive()
            if event["type"] == "websocket.disconnect":
                return
            raw = event["text"] if event.get("text") is not None else event["bytes"]
            try:
                message = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                message = None
            self.received.append(Received(loop.time(), raw, message))
            if message is not None:
                self._on_message(message, loop.time())
            async with self._changed:
                self._changed.notify_all()

    def _on_message(self, message: dict[str, Any], now: float) -> None:
        event = message.get("event")
        if event == "start":
            self.stream_sid = message["streamSid"]
        elif event == "media" and "sequenceNumber" in message:
            audio = base64.b64decode(message["media"]["payload"], validate=True)
            self.caller_audio += audio
            self._follow_caller_speech(audio)
        elif event == "mark":
            self.mark_echoes[message["mark"]["name"]] = now

    def _follow_caller_speech(self, frame: bytes) -> None:
        """A tiny VAD: speech starts on a loud frame and ends after 100 ms of silence."""
        if mulaw.rms(frame) > 1000:
            self._silent_frames = 0
            if not self._in_speech:
                self._in_speech, self.speech_starts = True, self.speech_starts + 1
        elif self._in_speech:
            self._silent_frames += 1
            if self._silent_frames >= 5:
                self._in_speech, self.speech_ends = False, self.speech_ends + 1

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), WAIT_S)

    async def say(self, audio: bytes, name: str, delta_bytes: int = 800) -> None:
        """Speak as the bridge does: media deltas, each followed by a mark."""
        started = asyncio.get_running_loop().time()
        for number, offset in enumerate(range(0, len(audio), delta_bytes), start=1):
            delta = audio[offset : offset + delta_bytes]
            await self._send({"event": "media", "media": {"payload": base64.b64encode(delta).decode()}})
            mark = f"{name}-{number}"
            await self._send({"event": "mark", "mark": {"name": mark}})
            self.marks_sent[mark] = SentMark(started, mulaw.ms(offset + len(delta)))

    async def clear(self) -> None:
        pending = [name for name in self.marks_sent if name not in self.mark_echoes]
        self.clears.append((asyncio.get_running_loop().time(), pending))
        await self._send({"event": "clear"})

    async def _send(self, message: dict[str, Any]) -> None:
        await self.websocket.send_text(json.dumps({**message, "streamSid": self.stream_sid}))


Agent = Callable[[FakeBridgePeer], Awaitable[None]]


@dataclass
class Webhook:
    path: str
    form: dict[str, str]
    signed: bool


@dataclass
class FakeVoiceline:
    """The gateway and the bridge, reduced to what Twilio sees, with signatures checked like ours."""

    agent: Agent
    bridge_token: str = TOKEN
    base_url: str = ""
    webhooks: list[Webhook] = field(default_factory=list)
    handshakes_signed: list[bool] = field(default_factory=list)
    peers: list[FakeBridgePeer] = field(default_factory=list)
    agent_errors: list[BaseException] = field(default_factory=list)
    stream_ended: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()
        app.post("/twilio/voice")(self.voice)
        app.post("/twilio/status")(self.status)
        app.websocket("/media-stream")(self.media_stream)
        return app

    async def _webhook(self, request: Request) -> Webhook:
        form = dict(parse_qsl((await request.body()).decode()))
        signature = request.headers.get("x-twilio-signature", "")
        hook = Webhook(request.url.path, form, RequestValidator(TOKEN).validate(str(request.url), form, signature))
        self.webhooks.append(hook)
        return hook

    async def voice(self, request: Request) -> Response:
        hook = await self._webhook(request)
        if not hook.signed:
            return Response(status_code=403)
        if hook.form["To"] != KNOWN_NUMBER:
            twiml = "<Response><Say>This number is not in service.</Say><Hangup/></Response>"
        else:
            parameters = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in STREAM_PARAMETERS.items())
            stream_url = self.base_url.replace("http://", "ws://") + "/media-stream"
            twiml = f'<Response><Connect><Stream url="{stream_url}">{parameters}</Stream></Connect></Response>'
        return Response(f'<?xml version="1.0" encoding="UTF-8"?>{twiml}', media_type="application/xml")

    async def status(self, request: Request) -> Response:
        hook = await self._webhook(request)
        return Response(status_code=204 if hook.signed else 403)

    async def media_stream(self, websocket: WebSocket) -> None:
        url = f"ws://{websocket.headers['host']}{websocket.url.path}"
        signed = RequestValidator(self.bridge_token).validate(url, {}, websocket.headers.get("x-twilio-signature", ""))
        self.handshakes_signed.append(signed)
        await websocket.accept()
        if not signed:
            await websocket.close(code=1008)
            return
        peer = FakeBridgePeer(websocket)
        self.peers.append(peer)
        agent = asyncio.create_task(self._speak_after_start(peer))
        try:
            await peer.run()
        finally:
            if agent.done() and agent.exception():
                self.agent_errors.append(agent.exception())
            agent.cancel()
            self.stream_ended.set()

    async def _speak_after_start(self, peer: FakeBridgePeer) -> None:
        await peer.wait_for(lambda: bool(peer.stream_sid))
        await self.agent(peer)


@contextlib.asynccontextmanager
async def serving(voiceline: FakeVoiceline) -> AsyncIterator[str]:
    """Serve the fake on a port the OS picks; it learns its own URL, as Twilio's webhooks name it."""
    async with serve_app(voiceline.app()) as base_url:
        voiceline.base_url = base_url
        yield base_url


def write_conversation(directory: Path, *, barge_in_ms: int | None = 200) -> Path:
    (directory / "caller_1.ulaw").write_bytes(tone(200, 440))
    (directory / "caller_2.ulaw").write_bytes(tone(200, 660))
    second: dict[str, Any] = {"caller": {"text": CALLER_LINES[1], "audio": "caller_2.ulaw"},
                              "agent": {"text": "Nine o'clock.", "audio": "agent_2.ulaw"}}
    if barge_in_ms is not None:
        second["interrupt_after_ms"] = barge_in_ms
    conversation = {
        "greeting": {"text": "Hello.", "audio": "greeting.ulaw"},
        "turns": [{"caller": {"text": CALLER_LINES[0], "audio": "caller_1.ulaw"},
                   "agent": {"text": "We can fix it.", "audio": "agent_1.ulaw"}}, second],
    }
    path = directory / "conversation.json"
    path.write_text(json.dumps(conversation))
    return path


def call_config(base_url: str, directory: Path, **overrides: Any) -> CallConfig:
    settings: dict[str, Any] = {
        "gateway_url": base_url, "to_number": KNOWN_NUMBER, "from_number": "+15551234567",
        "conversation": write_conversation(directory), "audio_dir": directory,
        "account_sid": ACCOUNT_SID, "auth_token": TOKEN, "max_call_seconds": 15.0,
        "on_line": lambda line: None, "http_timeout_s": WAIT_S, "stream_timeout_s": WAIT_S,
    }
    return CallConfig(**{**settings, **overrides})


async def greets_answers_and_yields_to_barge_in(peer: FakeBridgePeer) -> None:
    await peer.say(tone(400), "greeting")
    await peer.wait_for(lambda: peer.speech_ends >= 1)
    await peer.say(tone(1000), "reply1")
    await peer.wait_for(lambda: peer.speech_starts >= 2)  # the caller barges in
    await peer.clear()
    await peer.wait_for(lambda: peer.speech_ends >= 2)
    await peer.say(tone(300), "reply2")


@dataclass
class ScriptedCall:
    report: CallReport
    voiceline: FakeVoiceline
    peer: FakeBridgePeer
    transcript: list[str]


@pytest.fixture(scope="module")
async def scripted_call(tmp_path_factory: pytest.TempPathFactory) -> ScriptedCall:
    """One whole call, greeting, a turn and a barge-in turn, shared by the tests that read it."""
    directory = tmp_path_factory.mktemp("scripted_call")
    voiceline = FakeVoiceline(greets_answers_and_yields_to_barge_in)
    transcript: list[str] = []
    async with serving(voiceline) as base_url:
        config = call_config(base_url, directory, wav_path=directory / "call.wav",
                             malformed_frames=list(MALFORMED), on_line=transcript.append)
        report = await place_call(config)
        await asyncio.wait_for(voiceline.stream_ended.wait(), WAIT_S)
    assert voiceline.agent_errors == []
    return ScriptedCall(report, voiceline, voiceline.peers[0], transcript)


def test_scripted_call_completes_every_turn(scripted_call: ScriptedCall) -> None:
    report = scripted_call.report
    assert report.outcome == "completed", report.error
    assert report.close_code == 1000
    assert [turn.caller_text for turn in report.turns] == CALLER_LINES
    assert all(started is not None for started in report.reply_started_ms)
    assert report.greeting_started_ms is not None and report.greeting_started_ms < 200
    assert not report.greeting.cut_off
    assert (report.turns[0].reply.cut_off, report.turns[1].barged_in) == (True, True)
    assert report.stream_parameters == STREAM_PARAMETERS
    assert re.fullmatch(r"CA[0-9a-f]{32}", report.call_sid)
    assert re.fullmatch(r"MZ[0-9a-f]{32}", report.stream_sid or "")


def test_voice_webhook_and_stream_handshake_are_signed(scripted_call: ScriptedCall) -> None:
    voice = scripted_call.voiceline.webhooks[0]
    assert voice.path == "/twilio/voice" and voice.signed
    assert voice.form == {
        "CallSid": scripted_call.report.call_sid, "AccountSid": ACCOUNT_SID, "From": "+15551234567",
        "To": KNOWN_NUMBER, "Caller": "+15551234567", "Called": KNOWN_NUMBER, "CallStatus": "ringing",
        "Direction": "inbound", "ApiVersion": "2010-04-01",
    }
    assert scripted_call.voiceline.handshakes_signed == [True]


def test_stream_opens_like_twilio_and_numbers_every_message(scripted_call: ScriptedCall) -> None:
    report, peer = scripted_call.report, scripted_call.peer
    messages = [r.message for r in peer.received if r.message and "sequenceNumber" in r.message]
    assert peer.received[0].message == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert messages[0]["start"] == {
        "accountSid": ACCOUNT_SID, "streamSid": report.stream_sid, "callSid": report.call_sid,
        "tracks": ["inbound"], "customParameters": STREAM_PARAMETERS,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    assert [m["sequenceNumber"] for m in messages] == [str(n) for n in range(1, len(messages) + 1)]
    assert all(m["streamSid"] == report.stream_sid for m in messages)
    assert messages[-1] == {"event": "stop", "sequenceNumber": str(len(messages)), "streamSid": report.stream_sid,
                            "stop": {"accountSid": ACCOUNT_SID, "callSid": report.call_sid}}


def test_caller_frames_are_160_bytes_paced_every_20_ms(scripted_call: ScriptedCall) -> None:
    frames = scripted_call.peer.media
    media = [r.message["media"] for r in frames if r.message]
    assert all(len(base64.b64decode(m["payload"])) == mulaw.FRAME_BYTES for m in media)
    assert [m["chunk"] for m in media] == [str(n) for n in range(1, len(media) + 1)]
    assert [m["timestamp"] for m in media] == [str(20 * n) for n in range(len(media))]
    assert all(m["track"] == "inbound" for m in media)
    first = frames[0].at
    # Frame n is due at t0 + n·20 ms: it may be late by jitter, never early, and lateness never adds up.
    lateness = [frame.at - (first + 0.02 * n) for n, frame in enumerate(frames)]
    assert min(lateness) > -PACE_TOLERANCE_S
    assert max(lateness) < 0.1
    assert abs(lateness[-1]) < PACE_TOLERANCE_S * 2


def test_bridge_receives_exactly_the_reported_caller_audio(scripted_call: ScriptedCall) -> None:
    report, peer = scripted_call.report, scripted_call.peer
    assert len(peer.caller_audio) == report.sent_audio_bytes
    assert hashlib.sha256(peer.caller_audio).hexdigest() == report.sent_audio_sha256


def test_marks_echo_only_once_their_audio_has_played(scripted_call: ScriptedCall) -> None:
    peer = scripted_call.peer
    cleared_marks = peer.clears[0][1]
    played = {name: mark for name, mark in peer.marks_sent.items() if name not in cleared_marks}
    assert any(name.startswith("reply1") for name in played)  # some of the cut reply had played
    for name, mark in played.items():
        audio_end = mark.burst_started + mark.audio_ms_before / 1000  # 8000 bytes/s from the first delta
        assert audio_end - PACE_TOLERANCE_S <= peer.mark_echoes[name] <= audio_end + 0.15, name


def test_clear_drops_unplayed_audio_and_echoes_pending_marks_at_once(scripted_call: ScriptedCall) -> None:
    report, peer = scripted_call.report, scripted_call.peer
    cleared_at, cleared_marks = peer.clears[0]
    assert len(cleared_marks) >= 3
    assert all(peer.mark_echoes[name] - cleared_at < 0.1 for name in cleared_marks)
    last = peer.marks_sent[cleared_marks[-1]]
    assert last.burst_started + last.audio_ms_before / 1000 > cleared_at + 0.3  # not echoed by playback
    assert report.clears_received == 1
    assert report.marks_received == report.marks_echoed == len(peer.marks_sent) == len(peer.mark_echoes)
    assert report.agent_audio_received_ms == 400 + 1000 + 300
    assert report.agent_audio_cleared_ms >= 300
    assert abs(report.agent_audio_played_ms + report.agent_audio_cleared_ms - report.agent_audio_received_ms) <= 1
    assert "agent: ⟂ cut off (clear)" in scripted_call.transcript


def test_transcript_follows_the_call(scripted_call: ScriptedCall) -> None:
    transcript = scripted_call.transcript
    first, second = (transcript.index(f"caller: {line}") for line in CALLER_LINES)
    cut = transcript.index("agent: ⟂ cut off (clear)")
    assert transcript[0] == "agent: ▶ speaking"
    assert first < second < cut
    assert transcript[-1] == "agent: ■ finished"


def test_malformed_frames_arrive_after_the_greeting_while_media_goes_on(scripted_call: ScriptedCall) -> None:
    report, peer = scripted_call.report, scripted_call.peer
    malformed = peer.malformed
    assert [r.raw for r in malformed] == MALFORMED
    assert report.malformed_frames_sent == len(MALFORMED)
    greeting_played = max(at for name, at in peer.mark_echoes.items() if name.startswith("greeting"))
    assert malformed[0].at >= greeting_played
    assert peer.media[-1].at > malformed[-1].at


def test_status_callback_reports_the_completed_call_signed(scripted_call: ScriptedCall) -> None:
    report = scripted_call.report
    status = scripted_call.voiceline.webhooks[-1]
    assert (status.path, status.signed, report.status_callback_code) == ("/twilio/status", True, 204)
    assert status.form["CallSid"] == report.call_sid
    assert status.form["CallStatus"] == "completed"
    assert int(status.form["CallDuration"]) == math.ceil(report.duration_s)
    assert {status.form[k] for k in ("From", "To", "Direction")} == {"+15551234567", KNOWN_NUMBER, "inbound"}


def test_wav_holds_both_legs_time_aligned(scripted_call: ScriptedCall) -> None:
    report = scripted_call.report
    assert report.wav_path is not None
    with wave.open(str(report.wav_path)) as recording:
        assert (recording.getnchannels(), recording.getsampwidth(), recording.getframerate()) == (2, 2, 8000)
        assert recording.getnframes() == report.sent_audio_bytes
        pcm = recording.readframes(recording.getnframes())
    samples = memoryview(pcm).cast("h")
    caller, agent = samples[0::2].tolist(), samples[1::2].tolist()

    def loud_frames(channel: list[int]) -> list[int]:
        frames = range(len(channel) // mulaw.FRAME_BYTES)
        return [n for n in frames if max(map(abs, channel[n * 160 : (n + 1) * 160])) > 4000]

    caller_loud, agent_loud = loud_frames(caller), loud_frames(agent)
    assert len(caller_loud) == 2 * 200 // 20
    assert caller_loud[0] * 20 == report.turns[0].caller_started_ms
    assert len(agent_loud) == report.agent_audio_played_ms // 20
    assert report.greeting.started_ms == agent_loud[0] * 20


async def test_unknown_number_is_rejected_by_twiml_and_still_reported(tmp_path: Path) -> None:
    voiceline = FakeVoiceline(greets_answers_and_yields_to_barge_in)
    async with serving(voiceline) as base_url:
        report = await place_call(call_config(base_url, tmp_path, to_number="+15550199"))
    assert report.outcome == "rejected"
    assert report.spoken_text == "This number is not in service."
    assert report.stream_sid is None and voiceline.handshakes_signed == []
    assert [(hook.path, hook.signed) for hook in voiceline.webhooks] == [
        ("/twilio/voice", True), ("/twilio/status", True)]


async def test_wrong_auth_token_gets_403_and_no_stream(tmp_path: Path) -> None:
    voiceline = FakeVoiceline(greets_answers_and_yields_to_barge_in)
    async with serving(voiceline) as base_url:
        report = await place_call(call_config(base_url, tmp_path, auth_token="not-the-token"))
    assert (report.outcome, report.voice_webhook_code, report.status_callback_code) == ("failed", 403, 403)
    assert voiceline.handshakes_signed == []


async def test_bridge_refusing_the_handshake_signature_ends_the_call(tmp_path: Path) -> None:
    voiceline = FakeVoiceline(greets_answers_and_yields_to_barge_in, bridge_token="another-token")
    async with serving(voiceline) as base_url:
        report = await place_call(call_config(base_url, tmp_path))
    assert (report.outcome, report.close_code) == ("closed_by_bridge", 1008)
    assert voiceline.handshakes_signed == [False]


async def test_bridge_closing_the_stream_ends_the_call_with_its_code(tmp_path: Path) -> None:
    async def greets_then_hangs_up(peer: FakeBridgePeer) -> None:
        await peer.say(tone(100), "greeting")
        await peer.wait_for(lambda: "greeting-1" in peer.mark_echoes)
        await peer.websocket.close(code=1011)

    voiceline = FakeVoiceline(greets_then_hangs_up)
    async with serving(voiceline) as base_url:
        report = await place_call(call_config(base_url, tmp_path))
    assert (report.outcome, report.close_code) == ("closed_by_bridge", 1011)
    assert report.marks_echoed == 1 and report.turns == []
    assert voiceline.webhooks[-1].path == "/twilio/status"


async def test_silent_agent_hits_max_duration_and_the_phone_sends_stop(tmp_path: Path) -> None:
    async def silent(peer: FakeBridgePeer) -> None:
        await asyncio.Event().wait()

    voiceline = FakeVoiceline(silent)
    async with serving(voiceline) as base_url:
        report = await place_call(call_config(base_url, tmp_path, max_call_seconds=0.2))
        await asyncio.wait_for(voiceline.stream_ended.wait(), WAIT_S)
    peer = voiceline.peers[0]
    assert (report.outcome, report.close_code, report.greeting_started_ms) == ("timeout", 1000, None)
    assert report.sent_audio_bytes == len(peer.caller_audio) == 10 * mulaw.FRAME_BYTES
    assert peer.caller_audio == bytes([mulaw.SILENCE_BYTE]) * report.sent_audio_bytes
    assert peer.received[-1].message and peer.received[-1].message["event"] == "stop"
