"""Twilio Media Streams frames in and out, as pure functions (no sockets, no state)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

# The largest WebSocket message the bridge reads from Twilio, enforced by uvicorn (--ws-max-size) before any of
# it is buffered: a 20 ms media frame is ~300 bytes and a `start` a few kB. Anything bigger is not Twilio, and
# its stream is closed with 1009 (message too big).
MAX_FRAME_BYTES = 64 * 1024
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MalformedFrame(ValueError):
    """A frame we cannot use; it is logged and skipped, and the call goes on."""


@dataclass(frozen=True)
class StreamStart:
    stream_sid: str
    call_sid: str
    account_sid: str
    parameters: dict[str, str]


def parse_frame(raw: str | bytes | None) -> dict[str, Any]:
    """Decode one Twilio frame into a dict with a string `event`."""
    if raw is None:
        raise MalformedFrame("binary or empty frame")
    try:
        frame = orjson.loads(raw)  # about five times faster than json on a media frame; the hot path's main cost
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedFrame(f"not JSON: {error}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
        raise MalformedFrame("frame has no event")
    return frame


def media_payload(frame: dict[str, Any]) -> str:
    """The base64 audio of a `media` frame, checked but never decoded: it is only forwarded."""
    media = frame.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str) or not payload:
        raise MalformedFrame("media frame without payload")
    if not is_base64(payload):
        raise MalformedFrame("media payload is not base64")
    return payload


def is_base64(text: str) -> bool:
    """Padded base64, checked without decoding. Such a string needs no JSON escaping, so it can be spliced
    into a message template as is; anything else could break out of the string."""
    return not len(text) % 4 and _BASE64.fullmatch(text) is not None


def stream_start(frame: dict[str, Any]) -> StreamStart:
    start = frame.get("start")
    if not isinstance(start, dict):
        raise MalformedFrame("start frame without start block")
    params = start.get("customParameters") or {}
    fields = (start.get("streamSid") or frame.get("streamSid"), start.get("callSid"), start.get("accountSid"))
    if not all(isinstance(value, str) and _SID.fullmatch(value) for value in fields):
        raise MalformedFrame("start frame missing or malformed streamSid, callSid or accountSid")
    if not isinstance(params, dict):
        raise MalformedFrame("start frame customParameters is not an object")
    return StreamStart(*fields, parameters={str(k): str(v) for k, v in params.items()})


def mark_name(frame: dict[str, Any]) -> str:
    mark = frame.get("mark")
    name = mark.get("name") if isinstance(mark, dict) else None
    if not isinstance(name, str):
        raise MalformedFrame("mark frame without name")
    return name


# The outgoing messages are string templates, not json.dumps: per agent delta that is one dict and one
# serialisation fewer. Only checked values go in: a stream SID (matched by _SID at `start`), a
# payload checked by is_base64, and the bridge's own mark names (`m` and a number).


def media_message(stream_sid: str, payload: str) -> str:
    return '{"event":"media","streamSid":"%s","media":{"payload":"%s"}}' % (stream_sid, payload)  # noqa: UP031


def mark_message(stream_sid: str, name: str) -> str:
    return '{"event":"mark","streamSid":"%s","mark":{"name":"%s"}}' % (stream_sid, name)  # noqa: UP031


def clear_message(stream_sid: str) -> str:
    return '{"event":"clear","streamSid":"%s"}' % stream_sid  # noqa: UP031
