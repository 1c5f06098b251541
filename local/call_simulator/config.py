"""Everything one simulated call needs: where to call, who calls, what the caller says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from local.environment import DEFAULTS

LOCAL_DIR = Path(__file__).resolve().parent.parent
DEMO_CONVERSATION = LOCAL_DIR / "conversations" / "demo.json"
DEFAULT_AUDIO_DIR = LOCAL_DIR / "audio"


VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
# Twilio's Direction: a call to one of our numbers, or one our API placed (the simulator then plays the callee).
Direction = Literal["inbound", "outbound-api"]
# How a phone that never picks up ends, as Twilio's final CallStatus.
Unanswered = Literal["busy", "no-answer", "failed"]


@dataclass
class CallConfig:
    gateway_url: str  # e.g. http://127.0.0.1:3000; webhooks go to /twilio/voice and /twilio/status
    to_number: str
    from_number: str
    call_sid: str | None = None  # chosen by Twilio; set it to follow the call while it runs
    conversation: Path = DEMO_CONVERSATION
    audio_dir: Path = DEFAULT_AUDIO_DIR
    account_sid: str = DEFAULTS["TWILIO_ACCOUNT_SID"]
    auth_token: str = DEFAULTS["TWILIO_AUTH_TOKEN"]
    wav_path: Path | None = None
    # The Twilio REST stand-in, e.g. http://127.0.0.1:3001: the call is registered there so the agent can
    # hang it up or transfer it. None: nothing can update the call, as before the stand-in existed.
    twilio_api_url: str | None = None
    # Raw WebSocket messages (text or binary) sent once the greeting has played, between media frames.
    malformed_frames: list[str | bytes] = field(default_factory=list)
    on_line: Callable[[str], None] = print  # the live transcript
    max_call_seconds: float = 120.0
    agent_quiet_ms: int = 600  # silence after which the agent counts as done speaking
    http_timeout_s: float = 10.0
    stream_timeout_s: float = 10.0  # WebSocket opening and closing handshakes
    # An outbound call (Twilio's Calls API placed it): the URLs it was given override the gateway's paths,
    # and no status callback goes out when it was given none (gateway_url "" and status_callback_url None).
    direction: Direction = "inbound"
    voice_url: str | None = None
    status_callback_url: str | None = None
    # Answering machine detection's verdict, sent as AnsweredBy (None: AMD was not asked for).
    answered_by: str | None = None
    unanswered: Unanswered | None = None  # the phone never picks up: no voice webhook, only the final status

    @property
    def voice_webhook_url(self) -> str:
        return self.voice_url or self.gateway_url.rstrip("/") + VOICE_PATH

    @property
    def status_webhook_url(self) -> str | None:
        if self.status_callback_url:
            return self.status_callback_url
        return self.gateway_url.rstrip("/") + STATUS_PATH if self.gateway_url else None
