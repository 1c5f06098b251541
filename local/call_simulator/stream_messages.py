"""The JSON messages a phone's media stream sends, numbered the way Twilio numbers them."""

from __future__ import annotations

import base64
import json

from local.mulaw import BYTES_PER_SECOND


class PhoneMessages:
    """Builds one stream's messages. Every message after `connected` takes the next sequenceNumber.

    Twilio sends numbers as strings: sequenceNumber, media.chunk and media.timestamp.
    """

    def __init__(self, account_sid: str, call_sid: str, stream_sid: str) -> None:
        self._account_sid = account_sid
        self._call_sid = call_sid
        self.stream_sid = stream_sid
        self._sequence = 0

    @staticmethod
    def connected() -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: dict[str, str]) -> str:
        return self._numbered("start", {
            "accountSid": self._account_sid,
            "streamSid": self.stream_sid,
            "callSid": self._call_sid,
            "tracks": ["inbound"],
            "customParameters": custom_parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": BYTES_PER_SECOND, "channels": 1},
        })

    def media(self, chunk: int, timestamp_ms: int, audio: bytes) -> str:
        return self._numbered("media", {
            "track": "inbound",
            "chunk": str(chunk),
            "timestamp": str(timestamp_ms),
            "payload": base64.b64encode(audio).decode("ascii"),
        })

    def mark(self, name: str) -> str:
        return self._numbered("mark", {"name": name})

    def stop(self) -> str:
        return self._numbered("stop", {"accountSid": self._account_sid, "callSid": self._call_sid})

    def _numbered(self, event: str, body: dict[str, object]) -> str:
        self._sequence += 1
        return json.dumps({
            "event": event,
            "sequenceNumber": str(self._sequence),
            "streamSid": self.stream_sid,
            event: body,
        })
