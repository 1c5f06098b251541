"""One phone call: its Twilio media stream, its OpenAI Realtime session, and the relay between.

A Twilio frame enters in `_twilio_pump` and is dispatched by `_TWILIO_HANDLERS`; agent audio
leaves in `_on_audio_delta`, through `_send_agent_audio`; a barge-in is decided in
`_on_speech_started`; the model's function calls are answered in `_answer_function_calls`, off the
pumps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge import realtime_protocol as realtime
from bridge import setup_reads
from bridge import twilio_protocol as twilio
from bridge.agent_cache import AgentCache
from bridge.agent_tools import AgentTools, CallControl
from bridge.backoff import Backoff, retry_until
from bridge.event_recorder import CallEventRecorder
from bridge.event_writer import EventWriter
from bridge.playback import PlaybackTracker, base64_decoded_length
from bridge.realtime_link import ModelUnavailable, RealtimeLink
from bridge.realtime_pool import RealtimePool
from bridge.settings import BridgeSettings
from bridge.spoken_history import SpokenHistory
from bridge.tool_invoker import ToolInvoker, ToolResult
from bridge.twilio_calls import CallControlResult, TwilioCalls
from voiceline import calls, stream_token
from voiceline.instructions import call_variables, render
from voiceline.models import Agent, Call
from voiceline.ownership import condition_failed
from voiceline.tool_contract import CallContext

_T = TypeVar("_T")

logger = Logger(service="voiceline-bridge", child=True)

WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011
WS_MESSAGE_TOO_BIG = 1009
DB_TIMEOUT_S = 5.0
# The Call's outcome is written once, at the end: DynamoDB throttling or failing for a while must not lose it.
FINALISE_DEADLINE_S = 5.0
FINALISE_BACKOFF_BASE_S, FINALISE_BACKOFF_CAP_S = 0.1, 1.0
# How long the agent's last words (a goodbye, a handoff line) may take to be generated and heard.
LAST_WORDS_TIMEOUT_S = 15.0
RESPONSE_IDLE_TIMEOUT_S = 10.0
LAST_WORDS = {
    "hang_up": "Say a short, warm goodbye now, in one sentence.",
    "transfer": "Tell the caller in one short sentence that you are putting them through to a colleague now.",
}
TRANSFER_FAILED = ("The transfer did not go through. Apologise briefly, and offer to take a message so "
                   "someone can call back.")
# The bridge is stopping (a deploy or a scale-in) and the call cannot stay on it.
SHUTDOWN_WORDS = {
    "hang_up": "We have to end the call now. In one short sentence, apologise that you have to go, invite the "
               "caller to call back, and say goodbye. Ask nothing.",
    "transfer": "We have to end the call now. In one short sentence, tell the caller you are putting them "
                "through to a colleague. Ask nothing.",
}
SHUTDOWN_END_REASON = "bridge_shutdown"
# When the model is gone for good, a recorded line (8 kHz μ-law, made by local/audio/make_bridge_clips.py) is all
# the caller can still hear before the transfer or the hang-up.
AUDIO_DIR = Path(__file__).resolve().parent / "audio"
FALLBACK_CLIPS = {action: (AUDIO_DIR / f"openai_down_{action}.ulaw").read_bytes() for action in ("hang_up", "transfer")}
FALLBACK_ITEM = "fallback-clip"
CLIP_CHUNK_BYTES = 8000  # one second per media message
RECYCLE_POLL_S = 0.25  # a renewal waits for a quiet moment: nobody speaking, nothing playing, no response
SILENCE_END_REASON = "silence_timeout"
SILENCE_WORDS = ("Nobody has spoken for a while. In one short sentence, say you will end the call now since the "
                 "line seems quiet, invite them to call back, and say goodbye. Ask nothing.")
SILENCE_GOODBYE_WITHIN_S = 10.0
# How often the timer task looks at the clock, for templates that name {local_date} or {local_time}.
CLOCK_CHECK_S = 15.0
CLOCK_VARIABLES = ("local_date", "local_time")
AGENT_UNAVAILABLE = "agent_unavailable"
# The agent's settings could not be read at call start (DynamoDB failing) and no copy was at hand.
APOLOGY_INSTRUCTIONS = ("You answer the phone for a business whose phone system has a problem right now. You can "
                        "not help with anything. Say only what you are asked to say.")
APOLOGY = ("Say exactly, warmly: Sorry, we can't take your call right now because of a technical problem. Please "
           "call back in a few minutes. Goodbye.")
APOLOGY_LIMIT_S = 30  # the apology's own max duration and silence timeout


class CallSession:
    """All per-call state, two pumps (Twilio → model, model → Twilio) and a timer watch."""

    def __init__(self, websocket: WebSocket, settings: BridgeSettings, agents: AgentCache,
                 tool_invoker: ToolInvoker, twilio_calls: TwilioCalls, event_writer: EventWriter,
                 pool: RealtimePool | None = None) -> None:
        self.twilio = websocket
        self.settings = settings
        self.agents = agents
        self.tool_invoker = tool_invoker
        self.twilio_calls = twilio_calls
        self.event_writer = event_writer
        self.pool = pool
        self.accepted_at = time.monotonic()
        self.state = "waiting_for_start"
        self.call_sid: str | None = None
        self.stream_sid = ""
        self._agent_id = ""
        self._tenant_id = ""
        self._facts: stream_token.CallFacts | None = None  # what the voice webhook vouched for
        self.agent: Agent | None = None
        self.tools: AgentTools | None = None
        self.link: RealtimeLink | None = None
        self._connecting: asyncio.Task[None] | None = None  # the link's first connect; None once a pooled one is taken
        self.recorder: CallEventRecorder | None = None
        self.playback = PlaybackTracker()
        self.spoken_history: SpokenHistory | None = None  # for an agent whose past speech is kept as text
        self.response_active = False
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self._responses_done = asyncio.Condition()
        self._responses_done_count = 0
        self._heard_everything = asyncio.Event()  # every agent delta sent so far has played, or was cut
        self._heard_everything.set()
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self.tool_outcomes: dict[str, list[calls.ToolOutcome]] = {}
        self.control: CallControl | None = None  # the hang-up or transfer under way
        self._call_update: asyncio.Task[CallControlResult] | None = None  # its Twilio REST request
        self._marking_started: asyncio.Task[None] | None = None  # the Call's `in_progress` write
        self._marking_due = False  # set up, and that write not yet begun (see _start_marking)
        self._expected_stop: str | None = None  # why Twilio is about to stop the stream, when we asked it to
        self._caller_id = ""
        self.dropped_items: set[str] = set()
        self.interruptions = 0
        self.greeting_latency_ms: float | None = None
        self.setup_reads_ms: float | None = None  # DynamoDB's share of the greeting latency
        self.turn_latencies_ms: list[float] = []
        self.usage: dict[str, Any] = {}
        self.frames_skipped = 0
        self.model_events_ignored = 0
        self.end_reason: str | None = None
        self._stream_started = 0.0
        self._stream_started_at = datetime.now(UTC)  # the wall clock at `start`, for the Call
        self._last_activity = 0.0
        self._speech_stopped_at: float | None = None
        self._last_audio_response: str | None = None
        self._variables: dict[str, str] = {}  # what the templates were rendered with, kept current mid-call
        self._waits_for_callee = False
        self._ending = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            start = await self._wait_for_start()
            if start is not None and await self._set_up(start):
                await self._converse()
        finally:
            await self._clean_up()

    def end(self, reason: str) -> None:
        """Ask the supervisor to end the call; the first reason given is the one recorded."""
        if self.end_reason is None:
            self.end_reason = reason
        self._ending.set()

    def wind_down(self, speak_within_s: float) -> None:
        """The bridge is stopping: a short last line, then a transfer or a hang-up as the agent is configured.

        A call not yet talking simply ends; one already hanging up or transferring is left to finish.
        """
        if self.state != "active" or self.agent is None or self._ending.is_set():
            self.end(SHUTDOWN_END_REASON)
            return
        if self.control is not None:
            return
        transfer_to = self.agent.transfer_number
        control = (CallControl("transfer", SHUTDOWN_END_REASON, transfer_to) if transfer_to
                   else CallControl("hang_up", SHUTDOWN_END_REASON))
        self._leave(control, SHUTDOWN_WORDS[control.action], speak_within_s)

    def _leave(self, control: CallControl, words: str, speak_within_s: float) -> None:
        """End the call after one last line from the agent (shutdown, silence), as a task of the call's own,
        so the supervisor cancels it if the caller hangs up first."""
        self.control = control
        self._run_beside(self._say_last_words_and_go(control, words, speak_within_s))

    def summary(self) -> dict[str, Any]:
        return {"call_sid": self.call_sid, "stream_sid": self.stream_sid or None,
                "agent_id": self.agent.agent_id if self.agent else None, "state": self.state,
                "age_s": round(time.monotonic() - self.accepted_at, 1), "interruptions": self.interruptions,
                "frames_skipped": self.frames_skipped}

    async def _wait_for_start(self) -> twilio.StreamStart | None:
        """Read frames until Twilio's `start`, then check the stream token before anything else."""
        deadline = self.accepted_at + self.settings.start_timeout_s
        while True:
            try:
                raw = await asyncio.wait_for(self._receive_twilio(), deadline - time.monotonic())
            except TimeoutError:
                self.end("no_start_frame")
                await self._close_twilio(WS_POLICY_VIOLATION, "no start frame")
                return None
            except WebSocketDisconnect as error:
                self.end(_disconnect_reason(error))
                return None
            try:
                frame = twilio.parse_frame(raw)
                if frame["event"] != "start":
                    continue  # `connected`, or media before start: nothing to relay yet
                start = twilio.stream_start(frame)
            except twilio.MalformedFrame as error:
                self._skip_frame(error)
                continue
            return start if await self._accept_start(start) else None

    async def _accept_start(self, start: twilio.StreamStart) -> bool:
        agent_id = start.parameters.get("agentId", "")
        try:
            claims = stream_token.verify(self.settings.stream_token_key, start.parameters.get("streamToken", ""),
                                         start.call_sid, agent_id)
        except stream_token.InvalidStreamToken as error:
            logger.warning("stream rejected", call_sid=start.call_sid, reason=str(error))
            self.end("invalid_stream_token")
            await self._close_twilio(WS_POLICY_VIOLATION, "invalid stream token")
            return False
        self.call_sid, self.stream_sid = start.call_sid, start.stream_sid
        self._stream_started = self._last_activity = time.monotonic()
        self._stream_started_at = datetime.now(UTC)
        self._tenant_id = claims.tenant_id
        self._agent_id = agent_id
        self._facts = self._vouched_facts(start, agent_id)
        return True

    def _vouched_facts(self, start: twilio.StreamStart, agent_id: str) -> stream_token.CallFacts | None:
        """The call's facts as our webhook signed them, or None (then the bridge reads the agent and call)."""
        signed = start.parameters.get("callFacts")
        if not signed:
            return None
        try:
            return stream_token.verify_facts(self.settings.stream_token_key, signed, start.call_sid, agent_id)
        except stream_token.InvalidStreamToken as error:  # the token itself was good: read instead of trusting
            logger.warning("call facts ignored", call_sid=start.call_sid, reason=str(error))
            return None

    async def _set_up(self, start: twilio.StreamStart) -> bool:
        """Load the agent and the call, open the model session, and let the agent greet."""
        self.state = "connecting"
        self.recorder = CallEventRecorder(start.call_sid, self._stream_started,
                                          self.settings.event_flush_interval_s, self.event_writer)
        # The model connects while DynamoDB answers, for the model this agent had when last read here (else the
        # pool's). Should the agent now name another, that connection is dropped for one to the right model.
        known = self.agents.last_copy(self._agent_id)
        self._start_connecting(known.model if known is not None else self.settings.openai_pool_models[0])
        reads_started = time.monotonic()
        try:
            agent, call = await self._agent_and_call(start.call_sid)
        except Exception as error:
            logger.exception("agent or call lookup failed", call_sid=self.call_sid)
            self._record("error", data={"source": "dynamodb", "message": f"agent or call lookup failed: {error!r}"})
            return await self._apologise_instead()
        self.setup_reads_ms = (time.monotonic() - reads_started) * 1000
        if agent is None or call is None or agent.tenant_id != self._tenant_id:
            self.end(AGENT_UNAVAILABLE)
            await self._close_twilio(WS_INTERNAL_ERROR, "agent unavailable")
            return False
        self.agent = agent
        if agent.own_speech_as_text:
            self.spoken_history = SpokenHistory(forget_unheard=agent.truncate_on_barge_in)
        # A transfer shows Twilio's From: the caller's own number, or ours on an outbound call.
        self._caller_id = call.from_number
        self.tools = AgentTools(agent, _call_context(call, agent), self.tool_invoker,
                                self.settings.tool_failures_before_disabling)
        self.recorder.start()
        self._marking_due = True
        # The caller's name is looked up while the model connects, so the greeting can use it. Without the tool
        # no task is made: on a busy event loop, every needless yield on this path delays the greeting.
        lookup = (asyncio.create_task(self.tools.look_up_caller(self.settings.customer_lookup_budget_s))
                  if self.tools.looks_up_callers else None)
        # A failed connect is kept by the link: the model pump then hands the call over (`_hand_over`).
        await self._connected(agent.model)
        customer_name, looked_up = await lookup if lookup is not None else ("", None)
        if looked_up is not None:
            self._record_tool_call("lookup_customer", "call-start", {}, looked_up)
        await self._start_conversation(agent, call, customer_name)
        self.state = "active"
        return True

    async def _agent_and_call(self, call_sid: str) -> tuple[Agent | None, Call | None]:
        """The agent and the Call: what the webhook's facts vouch for at once, the rest read from DynamoDB.

        With nothing to read, no task is made: on a busy event loop each one costs the greeting a loop turn.
        """
        facts = self._facts
        agent = self.agents.vouched_copy(self._agent_id, facts.agent_fingerprint) if facts else None
        call = None
        if facts is not None and not facts.has_variables:
            call = Call(call_sid, tenant_id=self._tenant_id, agent_id=self._agent_id,
                        from_number=facts.from_number, to_number=facts.to_number, direction=facts.direction)
        if agent is None or call is None:
            agent, call = await asyncio.wait_for(asyncio.gather(
                self.agents.get(self._agent_id) if agent is None else _known(agent),
                setup_reads.read(calls.get_call, call_sid) if call is None else _known(call)), DB_TIMEOUT_S)
        return agent, call

    def _start_connecting(self, model: str) -> None:
        self.link = RealtimeLink(self.settings, model, self.pool, self._on_model_interrupted,
                                 lambda kind, data: self._record(kind, data=data))
        self._connecting = None if self.link.take_pooled() else asyncio.create_task(self.link.connect())

    async def _connected(self, model: str) -> RealtimeLink:
        """The call's model session, connected for `model`; a failed connect is kept by the link (see
        RealtimeLink.connect)."""
        assert self.link is not None
        if self.link.model != model:
            await self._stop_connecting()
            self._start_connecting(model)
        assert self.link is not None
        if self._connecting is not None:
            await self._connecting
        return self.link

    async def _stop_connecting(self) -> None:
        """Drop the model session, connected or still connecting, and let go of its link.

        The link's callbacks refer back to this session. Kept, that cycle would hold the whole call (its
        transcript, both sockets) until the next full collection, whose pause grows with each call held.
        """
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
            self._connecting = None
        if self.link is not None:
            await self.link.close()
            self.link = None

    async def _apologise_instead(self) -> bool:
        """The agent could not be read and no copy stands in: the model says a fixed apology, then the call ends.

        The caller hears a person-like voice instead of a dead line. With no model either, the stream is closed.
        """
        assert self.recorder is not None and self.call_sid is not None
        self.end_reason = AGENT_UNAVAILABLE  # whoever ends the call next, this is why
        self.agent = Agent(self._agent_id, tenant_id=self._tenant_id, name="", instructions=APOLOGY_INSTRUCTIONS,
                           greeting="", max_duration_s=APOLOGY_LIMIT_S, silence_timeout_s=APOLOGY_LIMIT_S)
        self.tools = AgentTools(self.agent, CallContext(self.call_sid, self._agent_id, self._tenant_id, "", ""),
                                self.tool_invoker)
        self.recorder.start()
        if (await self._connected(self.agent.model)).failure is not None:
            self.end(AGENT_UNAVAILABLE)
            await self._close_twilio(WS_INTERNAL_ERROR, "agent unavailable")
            return False
        await self.link.start(realtime.session_update(self.agent, APOLOGY_INSTRUCTIONS))
        self._run_beside(self._say_apology_and_end())
        self.state = "active"
        return True

    async def _say_apology_and_end(self) -> None:
        await self._ask_for_response(APOLOGY, allow_tools=False)
        await self._until_response_done_after(0)
        await self._until_heard()
        self.end(AGENT_UNAVAILABLE)

    async def _start_conversation(self, agent: Agent, call: Call, customer_name: str) -> None:
        """Configure the session; the agent greets first, unless it waits for the callee of an outbound call."""
        assert self.tools is not None
        self._variables = call_variables(_customer_number(call), agent.business_name, agent.timezone,
                                         datetime.now(UTC),
                                         extra={**(call.variables or {}), "customer_name": customer_name})
        self._waits_for_callee = agent.wait_for_callee and call.direction == "outbound"
        assert self.link is not None
        await self.link.start(self._session_update())
        if self._waits_for_callee:
            self._start_marking()
        else:
            await self._ask_for_response(realtime.greeting(render(agent.greeting, self._variables)))

    def _session_update(self) -> dict[str, Any]:
        """The session, with the instructions rendered from the call's variables as they are now."""
        assert self.agent is not None and self.tools is not None
        instructions = render(self.agent.instructions, self._variables)
        if self._waits_for_callee:
            greeting = render(self.agent.greeting, self._variables)
            instructions += f"\n\nThe person you called speaks first. Then greet them with: {greeting}"
        return realtime.session_update(self.agent, instructions, self.tools.definitions())

    async def _change_variables(self, changes: dict[str, str]) -> None:
        """Tell the model that variables changed mid-call: as a conversation message, so the cached prompt
        prefix stays (the default), or, for an agent without `stable_instructions`, by re-sending the
        re-rendered instructions, which busts OpenAI's prompt cache for the whole conversation."""
        assert self.agent is not None
        self._variables.update(changes)
        if self.agent.stable_instructions:
            await self._send_model(json.dumps(realtime.variables_changed(changes)))
        else:
            await self._send_model(json.dumps(self._session_update()))
        self._record("variables_changed", data={"changes": changes, "stable_instructions":
                                                bool(self.agent.stable_instructions)})

    def _start_marking(self) -> None:
        """Begin the Call's `in_progress` write, once: after the greeting's first audio, or at once without one.

        boto3 runs in a thread but holds the GIL for milliseconds at a time, which the greeting's sends and
        first relay would wait on. The Call is finalised only after this write (see _clean_up).
        """
        if self._marking_due:
            self._marking_due = False
            self._marking_started = asyncio.create_task(self._mark_stream_started())

    async def _mark_stream_started(self) -> None:
        assert self.call_sid is not None and self.stream_sid is not None
        try:
            await asyncio.to_thread(calls.mark_stream_started, self.call_sid, self.stream_sid,
                                    self._stream_started_at)
        except Exception:
            logger.exception("could not mark the stream started", call_sid=self.call_sid)

    async def _converse(self) -> None:
        """Run both pumps and the limits; whichever finishes first ends the call for all."""
        tasks = [asyncio.create_task(coroutine) for coroutine in
                 (self._twilio_pump(), self._model_pump(), self._watch_limits(), self._ending.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("call task failed", call_sid=self.call_sid, exc_info=task.exception())
                    self.end("bridge_error")
        finally:
            for task in [*tasks, *self._tool_tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tool_tasks, return_exceptions=True)

    async def _clean_up(self) -> None:
        """The single end path: close both sockets, flush events, finalise the Call."""
        self.state = "ending"
        await self._stop_connecting()
        await self._close_twilio(1000, self.end_reason or "call ended")
        if self.recorder is None or self.call_sid is None:
            return
        if self._call_update is not None:  # its event belongs before call_ended; the REST client times out
            await asyncio.gather(self._call_update, return_exceptions=True)
        self._start_marking()  # a call that ends before any audio was still answered
        if self._marking_started is not None:  # `in_progress` must land before `ended`, never after it
            await self._marking_started
        reason = self.end_reason or "unknown"
        self.recorder.record("call_ended", data={"reason": reason, "frames_skipped": self.frames_skipped,
                                                 "model_events_ignored": self.model_events_ignored})
        await self.recorder.close()
        outcome = calls.CallOutcome(
            end_reason=reason, ended_at=datetime.now(UTC),
            duration_s=time.monotonic() - self._stream_started,
            greeting_latency_ms=self.greeting_latency_ms, setup_reads_ms=self.setup_reads_ms,
            turn_latencies_ms=self.turn_latencies_ms, interruptions=self.interruptions, usage=self.usage,
            events_dropped=self.recorder.dropped, events_written=self.recorder.written,
            tool_outcomes=self.tool_outcomes, model=self.agent.model if self.agent else "")
        if not await retry_until(time.monotonic() + FINALISE_DEADLINE_S, lambda: self._finalise(outcome),
                                 Backoff(FINALISE_BACKOFF_BASE_S, FINALISE_BACKOFF_CAP_S)):
            logger.error("gave up finalising the call record", call_sid=self.call_sid, end_reason=reason)
        logger.info("call ended", call_sid=self.call_sid, end_reason=reason, interruptions=self.interruptions,
                    greeting_latency_ms=self.greeting_latency_ms, turn_latencies_ms=self.turn_latencies_ms)
        self.state = "ended"

    async def _finalise(self, outcome: calls.CallOutcome) -> bool:
        """One try at writing the Call's outcome; True when written, or when no retry could ever write it."""
        assert self.call_sid is not None
        try:
            await asyncio.to_thread(calls.finalise_call, self.call_sid, outcome)
        except Exception as error:
            if condition_failed(error):  # the Call record is gone: nothing to finalise
                logger.error("the call record no longer exists", call_sid=self.call_sid)
                return True
            logger.warning("call record not finalised yet, will retry", call_sid=self.call_sid, error=repr(error))
            return False
        return True

    # ---- Twilio → model ----------------------------------------------------------------------

    async def _receive_twilio(self) -> str | bytes | None:
        message = await self.twilio.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        return message.get("text") or message.get("bytes")

    async def _twilio_pump(self) -> None:
        while True:
            try:
                raw = await self._receive_twilio()
            except (WebSocketDisconnect, RuntimeError) as error:
                self.end(_disconnect_reason(error))
                return
            try:
                frame = twilio.parse_frame(raw)
                handler = _TWILIO_HANDLERS.get(frame["event"])
                if handler is not None:
                    await handler(self, frame)
            except twilio.MalformedFrame as error:
                self._skip_frame(error)
            except Exception:  # one bad frame must never end a live call
                logger.exception("Twilio frame handler failed", call_sid=self.call_sid)
            if self._ending.is_set():
                return

    async def _on_media(self, frame: dict[str, Any]) -> None:
        await self._send_model(realtime.append_audio(twilio.media_payload(frame)))

    async def _on_mark(self, frame: dict[str, Any]) -> None:
        if self.playback.on_mark(twilio.mark_name(frame)):
            self._last_activity = time.monotonic()
            if not self.playback.has_unplayed_audio:
                self._heard_everything.set()

    async def _on_stop(self, frame: dict[str, Any]) -> None:
        self.end(self._expected_stop or "caller_hung_up")

    async def _on_dtmf(self, frame: dict[str, Any]) -> None:
        dtmf = frame.get("dtmf")
        self._record("dtmf", role="caller", text=str(dtmf.get("digit")) if isinstance(dtmf, dict) else None)

    def _skip_frame(self, error: Exception) -> None:
        self.frames_skipped += 1
        if self.frames_skipped <= 20:  # a flood of garbage must not flood the logs too
            logger.warning("skipped malformed Twilio frame", call_sid=self.call_sid, reason=str(error))

    # ---- model → Twilio ----------------------------------------------------------------------

    async def _model_pump(self) -> None:
        """Model events to their handlers; the link reconnects beneath, and says when the model is gone for good."""
        assert self.link is not None
        try:
            async for event in self.link.events():
                handler = _MODEL_HANDLERS.get(event.get("type")) if event is not None else None
                if handler is None or event is None:
                    self.model_events_ignored += 1
                    continue
                try:
                    await handler(self, event)
                except Exception:  # one odd model event must never end a live call
                    logger.exception("model event handler failed", call_sid=self.call_sid, type=event.get("type"))
                if self._ending.is_set():
                    return
        except ModelUnavailable as failure:
            await self._hand_over(failure.end_reason)

    async def _on_model_interrupted(self) -> None:
        """The model connection was lost: cut what the phone still has to play, wait on no lost response."""
        if self.playback.has_unplayed_audio:
            self.playback.cut()
            await self._send_twilio(twilio.clear_message(self.stream_sid))
        if self.spoken_history is not None:
            self.spoken_history.forget()
        self._heard_everything.set()
        self.response_active = False
        self._response_idle.set()
        self._last_audio_response = None

    async def _hand_over(self, reason: str) -> None:
        """The model is gone for good: a recorded line, then a colleague (the transfer number) or a hang-up."""
        assert self.agent is not None
        if self.control is not None:  # already hanging up or transferring: that goes on without the model
            return
        transfer_to = self.agent.transfer_number
        self.control = CallControl("transfer", reason, transfer_to) if transfer_to else CallControl("hang_up", reason)
        clip = FALLBACK_CLIPS[self.control.action]
        for start in range(0, len(clip), CLIP_CHUNK_BYTES):
            chunk = clip[start:start + CLIP_CHUNK_BYTES]
            await self._send_agent_audio(FALLBACK_ITEM, base64.b64encode(chunk).decode(), len(chunk))
        await self._mark_the_rest()
        await self._until_heard()
        if not await self._carry_out(self.control, reason, reason):
            await self._carry_out(CallControl("hang_up", reason), reason)

    async def _on_audio_delta(self, event: dict[str, Any]) -> None:
        item_id, delta = event.get("item_id"), event.get("delta")
        if not isinstance(item_id, str) or item_id in self.dropped_items:
            return  # late audio of an item the caller cut off
        if not isinstance(delta, str) or not twilio.is_base64(delta):  # it is spliced into Twilio's JSON unescaped
            self.model_events_ignored += 1
            return
        now = time.monotonic()
        response_id = event.get("response_id")
        first_of_response = response_id != self._last_audio_response
        if first_of_response:
            self._last_audio_response = response_id
            self._measure_first_audio(now)
        self._last_activity = now
        await self._send_agent_audio(item_id, delta, base64_decoded_length(delta))
        if first_of_response:  # not on every delta: the greeting's first is the one that counts
            self._start_marking()

    async def _send_agent_audio(self, item_id: str, payload: str, audio_bytes: int) -> None:
        """Agent audio to the phone, then a mark when one is due (see playback.MARK_EVERY_MS)."""
        mark = self.playback.on_agent_audio(item_id, audio_bytes)
        self._heard_everything.clear()
        await self._send_twilio(twilio.media_message(self.stream_sid, payload))
        if mark is not None:
            await self._send_twilio(twilio.mark_message(self.stream_sid, mark))

    async def _mark_the_rest(self) -> None:
        """The agent's audio paused: a mark after the last of it, so its echo says when all of it has played."""
        mark = self.playback.mark_rest()
        if mark is not None:
            await self._send_twilio(twilio.mark_message(self.stream_sid, mark))

    def _measure_first_audio(self, now: float) -> None:
        if self.greeting_latency_ms is None:
            self.greeting_latency_ms = (now - self._stream_started) * 1000
        elif self._speech_stopped_at is not None:
            self.turn_latencies_ms.append((now - self._speech_stopped_at) * 1000)
        self._speech_stopped_at = None

    async def _on_speech_started(self, event: dict[str, Any]) -> None:
        """The caller started talking: if the agent is still being heard, cut it off."""
        self._last_activity = time.monotonic()
        self._speech_stopped_at = None
        if not self.playback.has_unplayed_audio:
            return
        generated_ms = self.playback.generated_ms
        item_id, heard_ms = self.playback.cut()
        if item_id is not None:
            self.dropped_items.add(item_id)
            if self.spoken_history is not None:
                self.spoken_history.cut(item_id, heard_ms)
        await self._send_twilio(twilio.clear_message(self.stream_sid))
        # Without a truncate the model keeps, and bills on every later turn, audio nobody heard.
        truncate_id = item_id if self.agent is None or self.agent.truncate_on_barge_in else None
        for message in realtime.barge_in(truncate_id, heard_ms, self.response_active):
            await self._send_model(message)
        self._heard_everything.set()  # only now: a swap of the cut item waits on this, and must follow the truncate
        self.interruptions += 1
        self._record("interruption", role="caller",
                     data={"item_id": item_id, "audio_end_ms": heard_ms, "generated_ms": generated_ms})

    async def _on_speech_stopped(self, event: dict[str, Any]) -> None:
        self._last_activity = self._speech_stopped_at = time.monotonic()

    async def _on_response_created(self, event: dict[str, Any]) -> None:
        self.response_active = True
        self._response_idle.clear()

    async def _on_response_done(self, event: dict[str, Any]) -> None:
        await self._mark_the_rest()
        self.response_active = False
        self._response_idle.set()
        async with self._responses_done:
            self._responses_done_count += 1
            self._responses_done.notify_all()
        response = event.get("response")
        if not isinstance(response, dict):
            return
        if isinstance(response.get("usage"), dict):
            _add_usage(self.usage, response["usage"])
        if self.spoken_history is not None:
            spoken = self.spoken_history.response_done(response, self.playback.item_id, self.playback.generated_ms)
            if spoken is not None:
                self._run_beside(self._keep_as_text(spoken))
        function_calls = realtime.function_calls(response)
        if function_calls:
            spoke = response.get("id") is not None and response.get("id") == self._last_audio_response
            self._run_beside(self._answer_function_calls(function_calls, spoke))

    def _run_beside(self, work: Coroutine[Any, Any, None]) -> None:
        """Work that must not hold up the model's events; cancelled when the call ends."""
        task = asyncio.create_task(work)
        self._tool_tasks.add(task)
        task.add_done_callback(self._tool_tasks.discard)

    async def _keep_as_text(self, item_id: str) -> None:
        """Once the phone has played all the agent audio sent (or the caller cut it off), swap the item's audio
        for the words heard (`own_speech_as_text`). Watching here keeps the per-mark path untouched."""
        assert self.spoken_history is not None
        await self._heard_everything.wait()
        for message in self.spoken_history.swap(item_id):
            await self._send_model(message)

    async def _on_agent_transcript(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        self._record("transcript", role="agent", text=str(event.get("transcript", "")),
                     data={"item_id": item_id, "interrupted": item_id in self.dropped_items})

    async def _on_caller_transcript(self, event: dict[str, Any]) -> None:
        self._record("transcript", role="caller", text=str(event.get("transcript", "")),
                     data={"item_id": event.get("item_id")})

    async def _on_model_error(self, event: dict[str, Any]) -> None:
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        logger.warning("OpenAI error event", call_sid=self.call_sid, code=error.get("code"),
                       error_message=error.get("message"))
        self._record("error", data={"source": "openai", "code": error.get("code"),
                                    "message": error.get("message"), "param": error.get("param")})

    # ---- tools -------------------------------------------------------------------------------

    async def _answer_function_calls(self, function_calls: list[realtime.FunctionCall], spoke: bool) -> None:
        """Run one response's calls together, answer each, then let the model go on (or say its last words).

        Runs as its own task: the audio relay never waits on a tool.
        """
        assert self.tools is not None
        answers = await asyncio.gather(*(self.tools.run(call) for call in function_calls))
        for call, (result, _) in zip(function_calls, answers, strict=True):
            self._record_tool_call(call.name, call.call_id, call.arguments, result)
            await self._send_model(json.dumps(realtime.function_call_output(call.call_id, result.reply)))
        await self._take_away_disabled_tools()
        if self.control is not None:  # already hanging up or transferring: nothing more to say
            return
        control = next((control for _, control in answers if control is not None), None)
        if control is None:
            await self._ask_for_response()
            return
        self.control = control
        if not spoke:  # the model called the tool before saying anything: ask for its last words
            before = self._responses_done_count
            await self._ask_for_response(LAST_WORDS[control.action])
            await self._until_response_done_after(before)
        await self._until_heard()
        if not await self._carry_out(control):
            self.control = None
            await self._ask_for_response(TRANSFER_FAILED)

    async def _take_away_disabled_tools(self) -> None:
        """A tool that keeps failing is removed from the session, so the model stops trying it and tells the caller.

        Changing the tools costs the cached prompt prefix once; a model that keeps calling a dead tool costs
        a wasted turn each time. A call it makes before the update lands is answered "disabled" at once.
        """
        assert self.tools is not None
        disabled = self.tools.take_newly_disabled()
        for name in disabled:
            logger.warning("tool disabled for the rest of the call", call_sid=self.call_sid, tool=name)
            self._record("tool_disabled", data={"name": name,
                                                "failures_in_a_row": self.tools.failures_before_disabling})
        if disabled:
            await self._send_model(json.dumps(realtime.tools_update(self.tools.definitions())))

    async def _say_last_words_and_go(self, control: CallControl, words: str, speak_within_s: float) -> None:
        """The bridge ends the call: tool answers under way go out, the agent says one line, then the call goes.

        The event recorded, and the end reason of a hang-up, are `control.reason` (shutdown, silence).
        """
        self._record(control.reason, data={"then": control.action, "to": control.to_number})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(speak_within_s):
                # The model refuses response.create while a response runs or a function call lacks its output;
                # `control` is set, so an answering task sends its outputs and asks for nothing more.
                while True:
                    await self._response_idle.wait()
                    answering = [task for task in self._tool_tasks if task is not asyncio.current_task()]
                    if not answering:
                        break
                    await asyncio.wait(answering)
                before = self._responses_done_count
                await self._ask_for_response(words, allow_tools=False)
                await self._until_response_done_after(before)
                await self._until_heard()
        if not await self._carry_out(control, control.reason):
            await self._carry_out(CallControl("hang_up", control.reason), control.reason)

    async def _ask_for_response(self, instructions: str | None = None, allow_tools: bool = True) -> None:
        """`response.create` once no response is active (the model allows one at a time), after a system message
        with `instructions` when given. Without tools (last words), no tool call may start anything new."""
        if not self._response_idle.is_set():  # no wait_for when idle: a loop turn saved on the greeting's path
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._response_idle.wait(), RESPONSE_IDLE_TIMEOUT_S)
        if instructions is not None:
            await self._send_model(json.dumps(realtime.system_message(instructions)))
        await self._send_model(json.dumps(realtime.response_create(allow_tools)))

    async def _until_response_done_after(self, count: int) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LAST_WORDS_TIMEOUT_S), self._responses_done:
                await self._responses_done.wait_for(lambda: self._responses_done_count > count)

    async def _until_heard(self) -> None:
        """Until the phone has played every agent delta sent so far (its marks came back), or a timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._heard_everything.wait(), LAST_WORDS_TIMEOUT_S)

    async def _carry_out(self, control: CallControl, hang_up_reason: str = "agent_hung_up",
                         transfer_reason: str = "transferred") -> bool:
        """Update the live call through Twilio's REST API; Twilio then stops the stream itself.

        False when a transfer did not go through: the call is still on.
        """
        assert self.call_sid is not None
        end_reason = hang_up_reason if control.action == "hang_up" else transfer_reason
        self._expected_stop = end_reason
        # Twilio may stop the stream before its REST answer is back, which cancels this task: the update
        # runs on by itself, and the clean-up waits for it, so its event is never lost.
        self._call_update = asyncio.create_task(self._update_call(control))
        result = await asyncio.shield(self._call_update)
        if result.ok or control.action == "hang_up":
            # A hang-up Twilio refused still ends the call: closing the stream ends a <Connect>-only call.
            self.end(end_reason)
            return True
        self._expected_stop = None
        return False

    async def _update_call(self, control: CallControl) -> CallControlResult:
        assert self.call_sid is not None
        if control.action == "hang_up":
            result = await self.twilio_calls.hang_up(self.call_sid)
        else:
            assert control.to_number is not None
            result = await self.twilio_calls.transfer(self.call_sid, control.to_number, self._caller_id)
        self._record(control.action, data={"reason": control.reason, "to": control.to_number,
                                           "outcome": result.outcome, "twilio_code": result.error_code,
                                           "elapsed_ms": result.elapsed_ms})
        return result

    def _record_tool_call(self, name: str, call_id: str, arguments: Any, result: ToolResult) -> None:
        self.tool_outcomes.setdefault(name, []).append(calls.ToolOutcome(result.outcome, result.duration_ms))
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        self._record("tool_call", role="agent", text=name,
                     data={"name": name, "call_id": call_id, "arguments": arguments, "outcome": result.outcome,
                           "output": result.reply, "duration_ms": result.duration_ms})

    # ---- limits ------------------------------------------------------------------------------

    async def _watch_limits(self) -> None:
        """End the call at the agent's max duration, or with a goodbye when nobody has spoken for too long; keep the
        clock variables current; renew the model session in time."""
        assert self.agent is not None and self.link is not None
        hard_stop = self._stream_started + float(self.agent.max_duration_s)
        clock_check = time.monotonic() + CLOCK_CHECK_S
        while True:
            now = time.monotonic()
            silence_stop = self._last_activity + float(self.agent.silence_timeout_s)
            if now >= hard_stop:
                self.end("max_duration")
                return
            if now >= silence_stop and self.control is None:
                self._leave(CallControl("hang_up", SILENCE_END_REASON), SILENCE_WORDS, SILENCE_GOODBYE_WITHIN_S)
            if now >= clock_check:
                clock_check = now + CLOCK_CHECK_S
                await self._refresh_clock()
            renew_at = self.link.recycle_at()
            if self.link.recycle_due():
                if self._quiet():
                    await self.link.recycle()
                    continue
                renew_at = now + RECYCLE_POLL_S
            next_stop = hard_stop if self.control is not None else min(hard_stop, silence_stop)
            await asyncio.sleep(max(min(next_stop, clock_check, renew_at) - now, 0.01))

    def _quiet(self) -> bool:
        """Nobody is speaking, nothing is left to play, and no response or tool is under way."""
        assert self.link is not None
        return not (self.response_active or self.link.response_active or self.link.caller_speaking
                    or self.playback.has_unplayed_audio or self._tool_tasks or self.control is not None)

    async def _refresh_clock(self) -> None:
        """The local date and time moved on: tell the model, if the instructions name them."""
        assert self.agent is not None
        now = call_variables("", "", self.agent.timezone, datetime.now(UTC))
        changes = {name: now[name] for name in CLOCK_VARIABLES
                   if f"{{{name}}}" in self.agent.instructions and now[name] != self._variables.get(name)}
        if changes:
            await self._change_variables(changes)

    # ---- send helpers: they never raise into a pump -------------------------------------------

    async def _send_twilio(self, text: str) -> None:
        try:
            await self.twilio.send_text(text)
        except Exception:
            self.end("twilio_disconnected")

    async def _send_model(self, text: str) -> None:
        if self.link is not None:  # never raises: the link reconnects, or the model pump hands the call over
            await self.link.send(text)

    async def _close_twilio(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # already closed by the peer: nothing left to tell it
            await self.twilio.close(code=code, reason=reason[:120])

    def _record(self, kind: str, role: str | None = None, text: str | None = None,
                data: dict[str, Any] | None = None) -> None:
        if self.recorder is not None:
            self.recorder.record(kind, role=role, text=text, data=data)


async def _known(value: _T) -> _T:
    """A value already in hand, where a read would otherwise be awaited."""
    return value


def _disconnect_reason(error: Exception) -> str:
    """Why the Twilio stream went: a message over MAX_FRAME_BYTES makes the server close it with 1009."""
    if isinstance(error, WebSocketDisconnect) and error.code == WS_MESSAGE_TOO_BIG:
        return "twilio_frame_too_large"
    return "twilio_disconnected"


def _customer_number(call: Call) -> str:
    """The other party: the caller on an inbound call, the callee on an outbound one."""
    return call.to_number if call.direction == "outbound" else call.from_number


def _call_context(call: Call, agent: Agent) -> CallContext:
    """What every tool is told about the call: `from` is always the customer, `to` always the business."""
    business_number = call.from_number if call.direction == "outbound" else call.to_number
    return CallContext(call.call_sid, agent.agent_id, agent.tenant_id, _customer_number(call), business_number)


def _add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Sum OpenAI's nested usage counters across responses."""
    for key, value in usage.items():
        if isinstance(value, dict):
            _add_usage(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


Handler = Callable[[CallSession, dict[str, Any]], Awaitable[None]]

_TWILIO_HANDLERS: dict[str, Handler] = {
    "media": CallSession._on_media,
    "mark": CallSession._on_mark,
    "stop": CallSession._on_stop,
    "dtmf": CallSession._on_dtmf,
}

# Every other OpenAI event is ignored and counted: a new event type must never end a call.
_MODEL_HANDLERS: dict[str, Handler] = {
    "response.output_audio.delta": CallSession._on_audio_delta,
    "input_audio_buffer.speech_started": CallSession._on_speech_started,
    "input_audio_buffer.speech_stopped": CallSession._on_speech_stopped,
    "response.created": CallSession._on_response_created,
    "response.done": CallSession._on_response_done,
    "response.output_audio_transcript.done": CallSession._on_agent_transcript,
    "conversation.item.input_audio_transcription.completed": CallSession._on_caller_transcript,
    "error": CallSession._on_model_error,
}
