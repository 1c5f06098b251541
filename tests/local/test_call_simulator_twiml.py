"""Reading TwiML the way Twilio executes it: verbs in order, up to a stream or a hang-up."""

import pytest

from local.call_simulator.twiml import InvalidTwiML, StreamInstruction, parse_twiml

CONNECT = ('<Connect><Stream url="wss://bridge.example/media-stream">'
           '<Parameter name="callSid" value="CA1"/><Parameter name="streamToken" value="a.b"/>'
           "</Stream></Connect>")


def test_connect_stream_gives_url_and_parameters() -> None:
    answer = parse_twiml(f'<?xml version="1.0" encoding="UTF-8"?><Response>{CONNECT}</Response>')
    assert answer.stream == StreamInstruction("wss://bridge.example/media-stream",
                                              {"callSid": "CA1", "streamToken": "a.b"})
    assert answer.spoken_text == ""


def test_say_and_hangup_ends_the_call_with_the_spoken_text() -> None:
    answer = parse_twiml("<Response><Say voice='alice'> Sorry, this number is not in service. </Say>"
                         "<Hangup/></Response>")
    assert (answer.stream, answer.spoken_text) == (None, "Sorry, this number is not in service.")


def test_say_before_connect_is_spoken_first() -> None:
    answer = parse_twiml(f"<Response><Say>Connecting you.</Say>{CONNECT}</Response>")
    assert answer.stream is not None and answer.spoken_text == "Connecting you."


def test_nothing_after_hangup_runs() -> None:
    assert parse_twiml(f"<Response><Hangup/>{CONNECT}</Response>").stream is None


@pytest.mark.parametrize("twiml", ["not xml", "<Reply/>", "<Response><Connect><Stream/></Connect></Response>"])
def test_twiml_twilio_could_not_run_is_invalid(twiml: str) -> None:
    with pytest.raises(InvalidTwiML):
        parse_twiml(twiml)
