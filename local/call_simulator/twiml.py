"""Reading TwiML as Twilio executes it: connect a media stream, dial a number, or say something and hang up."""

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
class DialInstruction:
    number: str
    caller_id: str | None = None  # None: Twilio shows the caller's own number


@dataclass(frozen=True)
class TwiMLAnswer:
    stream: StreamInstruction | None  # None (and no dial): the call ends after the spoken text
    spoken_text: str = ""
    dial: DialInstruction | None = None


def parse_twiml(text: str) -> TwiMLAnswer:
    """Follow the verbs in order, as Twilio does, until a <Connect><Stream>, a <Dial> or the end of the call."""
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
        elif verb.tag == "Dial":
            return TwiMLAnswer(None, " ".join(spoken), _dial_instruction(verb))
    return TwiMLAnswer(None, " ".join(spoken))


def _stream_instruction(stream: ET.Element) -> StreamInstruction:
    url = stream.get("url")
    if not url:
        raise InvalidTwiML("<Stream> has no url")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    parameters.pop("", None)
    return StreamInstruction(url, parameters)


def _dial_instruction(dial: ET.Element) -> DialInstruction:
    """<Dial>+1555…</Dial> or <Dial><Number>+1555…</Number></Dial>: the number to ring."""
    number_noun = dial.find("Number")
    number = (number_noun.text if number_noun is not None else dial.text) or ""
    if not number.strip():
        raise InvalidTwiML("<Dial> has no number")
    return DialInstruction(number.strip(), dial.get("callerId"))
