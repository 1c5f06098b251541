"""Placing one simulated call: the voice webhook, the TwiML, the media stream, the status callback.

With `twilio_api_url` set, the call is first registered with the Twilio REST stand-in, so the agent
can hang it up or transfer it through Twilio's REST API while it runs. An outbound call comes from
the stand-in itself, which hands its updates straight in.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import httpx

from local.call_simulator.call_updates import CallUpdates, registered_call
from local.call_simulator.caller_script import CallerScript, load_caller_script
from local.call_simulator.config import CallConfig
from local.call_simulator.media_stream import MediaStreamLeg
from local.call_simulator.report import CallReport
from local.call_simulator.sids import new_sid
from local.call_simulator.turn_taking import CallerTurnTaking
from local.call_simulator.twiml import InvalidTwiML, parse_twiml
from local.call_simulator.wav import StereoRecording
from local.call_simulator.webhooks import TwilioWebhooks, call_parameters, status_parameters, voice_parameters


async def place_call(config: CallConfig, updates: CallUpdates | None = None) -> CallReport:
    """Call the gateway as Twilio would for one call, and report what happened.

    Inbound (the default), the simulator is Twilio and the caller. For an outbound call the Twilio
    REST stand-in is Twilio, and the simulator plays the callee who picks up: the stand-in passes the
    call's REST updates in as `updates`, so nothing is registered. A gateway or REST stand-in that
    cannot be reached raises httpx.HTTPError: there is no call to report on. A status callback that
    cannot be delivered is only noted in the report, as Twilio only logs it.
    """
    script = load_caller_script(config.conversation, config.audio_dir)  # a bad script fails before dialling
    report = CallReport(call_sid=config.call_sid or new_sid("CA"))
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=config.http_timeout_s) as http:
        webhooks = TwilioWebhooks(http, config.auth_token)
        if config.unanswered is not None:
            report.outcome = "unanswered"
        else:
            async with _known_to_twilio_rest(http, config, report.call_sid, updates) as call_updates:
                voice = await webhooks.post(config.voice_webhook_url, voice_parameters(report.call_sid, config))
                report.voice_webhook_code, report.twiml = voice.status_code, voice.text
                if voice.is_success:
                    await _answer(config, report, script, call_updates)
                else:
                    report.outcome, report.error = "failed", f"voice webhook answered HTTP {voice.status_code}"
        report.duration_s = round(time.monotonic() - started, 3)
        duration_s = 0 if config.unanswered else math.ceil(report.duration_s)
        if config.status_webhook_url is not None:
            try:
                status = await webhooks.post(config.status_webhook_url,
                                             status_parameters(report.call_sid, config, duration_s))
            except httpx.HTTPError as error:  # Twilio only logs it (warning 15003): the call is over either way
                report.status_callback_error = repr(error)
            else:
                report.status_callback_code = status.status_code
    return report


def _known_to_twilio_rest(http: httpx.AsyncClient, config: CallConfig, call_sid: str, updates: CallUpdates | None,
                          ) -> contextlib.AbstractAsyncContextManager[CallUpdates | None]:
    """Twilio knows a call before it asks for its TwiML; without a stand-in nothing can update it."""
    if updates is not None or config.twilio_api_url is None:
        return contextlib.nullcontext(updates)
    return registered_call(http, config.twilio_api_url, call_parameters(call_sid, config), config.stream_timeout_s)


async def _answer(config: CallConfig, report: CallReport, script: CallerScript, updates: CallUpdates | None) -> None:
    """Follow the TwiML: hear the <Say>, then stream the conversation, dial a number or hang up."""
    try:
        answer = parse_twiml(report.twiml)
    except InvalidTwiML as error:
        report.outcome, report.error = "failed", str(error)
        return
    report.spoken_text = answer.spoken_text
    if answer.spoken_text:
        config.on_line(f"agent (TwiML <Say>): {answer.spoken_text}")
    if answer.dial is not None:
        report.outcome, report.ended_by = "completed", "transferred"
        report.transferred_to = answer.dial.number
        report.transfer_caller_id = answer.dial.caller_id or config.from_number
        return
    if answer.stream is None:
        report.outcome = "rejected"
        return
    report.stream_url, report.stream_parameters = answer.stream.url, dict(answer.stream.parameters)
    caller = CallerTurnTaking(script.lines, config.on_line, config.agent_quiet_ms, script.agent_hangs_up,
                              caller_speaks_first=script.caller_speaks_first)
    report.greeting, report.turns = caller.greeting, caller.turns
    recording = StereoRecording()
    await MediaStreamLeg(config, answer.stream, report, caller, recording, updates).run()
    if config.wav_path is not None and recording.samples:
        await asyncio.to_thread(recording.write, config.wav_path)
        report.wav_path = config.wav_path
