"""What happened on one simulated call, for tests, the demo and the CLI."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# completed: the script ran to the end; rejected: the TwiML hung up without a stream;
# closed_by_bridge: the bridge closed the media stream first; timeout: max call duration reached;
# failed: the webhook, the TwiML or the media stream connection did not work (see `error`);
# unanswered: the phone never picked up (busy, no answer), so only the status callback went out.
Outcome = Literal["completed", "rejected", "closed_by_bridge", "timeout", "failed", "unanswered"]

# Who or what ended a call that got through: the scripted caller, the agent through Twilio's REST API
# (Status=completed, or new TwiML with <Dial>), the bridge closing the media stream, or the time limit.
EndedBy = Literal["caller_hung_up", "agent_hung_up", "transferred", "stream_closed", "max_duration"]
OUTCOMES: dict[EndedBy, Outcome] = {
    "caller_hung_up": "completed",
    "agent_hung_up": "completed",
    "transferred": "completed",
    "stream_closed": "closed_by_bridge",
    "max_duration": "timeout",
}


@dataclass
class AgentReply:
    """One stretch of agent speech as the phone played it, in ms since the stream started."""

    started_ms: int | None = None
    finished_ms: int | None = None
    cut_off: bool = False  # a `clear` dropped the rest of it


@dataclass
class TurnReport:
    caller_text: str
    caller_started_ms: int
    caller_finished_ms: int | None = None
    barged_in: bool = False  # the caller started while the agent was still speaking
    reply: AgentReply = field(default_factory=AgentReply)

    @property
    def reply_latency_ms(self) -> int | None:
        """Caller went quiet → the agent's reply started playing."""
        if self.caller_finished_ms is None or self.reply.started_ms is None:
            return None
        return self.reply.started_ms - self.caller_finished_ms


@dataclass
class CallReport:
    call_sid: str
    outcome: Outcome = "failed"
    error: str | None = None
    ended_by: EndedBy | None = None  # None: the call never got through (rejected or failed)
    transferred_to: str | None = None  # the number a <Dial> rang
    transfer_caller_id: str | None = None  # the caller ID whoever answers the <Dial> sees
    voice_webhook_code: int | None = None
    twiml: str = ""
    spoken_text: str = ""  # <Say> text of the TwiML
    stream_url: str | None = None
    stream_parameters: dict[str, str] = field(default_factory=dict)
    stream_sid: str | None = None
    close_code: int | None = None
    # Every caller payload as sent, silence included: the bridge must forward exactly these bytes.
    sent_audio_bytes: int = 0
    sent_audio_sha256: str = hashlib.sha256().hexdigest()
    greeting_started_ms: int | None = None  # stream start → first agent audio received
    greeting: AgentReply = field(default_factory=AgentReply)
    turns: list[TurnReport] = field(default_factory=list)
    clears_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    agent_audio_received_ms: int = 0
    agent_audio_played_ms: int = 0
    agent_audio_cleared_ms: int = 0
    malformed_frames_sent: int = 0
    bridge_frames_ignored: int = 0  # frames from the bridge Twilio would reject
    duration_s: float = 0.0
    wav_path: Path | None = None
    status_callback_code: int | None = None
    status_callback_error: str | None = None  # the status callback could not be delivered

    @property
    def reply_started_ms(self) -> list[int | None]:
        return [turn.reply.started_ms for turn in self.turns]

    def summary(self) -> str:
        lines = [
            f"call {self.call_sid}: {self.outcome}" + (f" ({self.error})" if self.error else ""),
            f"  duration {self.duration_s:.1f} s, voice webhook HTTP {self.voice_webhook_code}, "
            f"status callback HTTP {self.status_callback_code}",
        ]
        if self.ended_by:
            lines.append(f"  ended by: {self.ended_by}")
        if self.transferred_to:
            lines.append(f"  transferred to {self.transferred_to} (caller ID {self.transfer_caller_id})")
        if self.spoken_text:
            lines.append(f"  TwiML said: {self.spoken_text}")
        if self.stream_sid is None:
            return "\n".join(lines)
        lines += [
            f"  stream {self.stream_sid} closed with code {self.close_code}",
            f"  caller audio sent {self.sent_audio_bytes} bytes, sha256 {self.sent_audio_sha256[:16]}…",
            f"  agent audio received {self.agent_audio_received_ms} ms, played {self.agent_audio_played_ms} ms,"
            f" cleared {self.agent_audio_cleared_ms} ms; {self.clears_received} clears,"
            f" marks {self.marks_echoed}/{self.marks_received} echoed",
            f"  greeting audio after {self.greeting_started_ms} ms",
        ]
        if self.malformed_frames_sent or self.bridge_frames_ignored:
            lines.append(f"  malformed frames sent {self.malformed_frames_sent}; "
                         f"frames from the bridge ignored {self.bridge_frames_ignored}")
        for number, turn in enumerate(self.turns, start=1):
            latency = turn.reply_latency_ms
            lines.append(
                f"  turn {number}: reply "
                + (f"after {latency} ms" if latency is not None else "never started")
                + (", caller barged in" if turn.barged_in else "")
                + (", reply cut off" if turn.reply.cut_off else "")
            )
        if self.wav_path:
            lines.append(f"  recording: {self.wav_path}")
        return "\n".join(lines)
