"""Reading the gateway's TwiML: connect a media stream, or say something and hang up."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class InvalidTwiML(ValueError):
    """TwiML Twilio could not execute; a real caller would hear "an application error has occurred"."""


@dataclass(frozen=True)
class StreamInstruction:
    url: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TwiMLAnswer:
    stream: StreamInstruction | None  # None: the call ends after the spoken text
    spoken_text: str = ""


def parse_twiml(text: str) -> TwiMLAnswer:
    """Follow the verbs in order, as Twilio does, until a <Connect><Stream> or the end of the call."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise InvalidTwiML(f"TwiML is not XML: {error}") from None
    if root.tag != "Response":
        raise InvalidTwiML(f"TwiML root is <{root.tag}>, not <Response>")
    spoken: list[str] = []
    for verb in root:
        if verb.tag == "Say" and verb.text:
            spoken.append(verb.text.strip())
        elif verb.tag in ("Hangup", "Reject"):
            break
        elif verb.tag == "Connect" and (stream := verb.find("Stream")) is not None:
            return TwiMLAnswer(_stream_instruction(stream), " ".join(spoken))
    return TwiMLAnswer(None, " ".join(spoken))


def _stream_instruction(stream: ET.Element) -> StreamInstruction:
    url = stream.get("url")
    if not url:
        raise InvalidTwiML("<Stream> has no url")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    parameters.pop("", None)
    return StreamInstruction(url, parameters)
