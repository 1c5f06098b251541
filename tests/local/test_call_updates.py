"""How a REST update of a live call ends the simulator's media stream, as Twilio would carry it out."""

from __future__ import annotations

import pytest

from local.call_simulator.call_updates import CallEnd, call_end

CALLER = "+15551230000"


@pytest.mark.parametrize("parameters, expected", [
    ({"Status": "completed"}, CallEnd("agent_hung_up")),
    ({"Status": "completed", "Twiml": "<Response><Dial>+15557654321</Dial></Response>"}, CallEnd("agent_hung_up")),
    ({"Twiml": '<Response><Dial callerId="+15550100">+15557654321</Dial></Response>'},
     CallEnd("transferred", "+15557654321", "+15550100")),
    ({"Twiml": "<Response><Dial><Number> +15557654321 </Number></Dial></Response>"},
     CallEnd("transferred", "+15557654321", CALLER)),
    ({"Twiml": "<Response><Say>Goodbye.</Say><Hangup/></Response>"}, CallEnd("agent_hung_up")),
    ({"Twiml": "<Response/>"}, CallEnd("agent_hung_up")),
], ids=["completed", "completed-wins-over-twiml", "dial-with-caller-id", "dial-number-noun-shows-the-caller",
        "say-and-hang-up", "empty-response"])
def test_update_that_ends_the_stream(parameters: dict[str, str], expected: CallEnd) -> None:
    assert call_end(parameters, CALLER) == expected


@pytest.mark.parametrize("twiml, error", [
    ("<Response><Dial>", "update TwiML: TwiML is not XML"),
    ("<Say>Hi</Say>", "update TwiML: TwiML root is <Say>, not <Response>"),
    ("<Response><Dial callerId='+15550100'> </Dial></Response>", "update TwiML: <Dial> has no number"),
    ('<Response><Connect><Stream url="wss://example.com/media"/></Connect></Response>', "new <Stream>"),
], ids=["not-xml", "wrong-root", "dial-without-number", "new-stream"])
def test_twiml_the_simulator_cannot_follow_ends_the_call_with_an_error(twiml: str, error: str) -> None:
    end = call_end({"Twiml": twiml}, CALLER)
    assert end is not None
    assert (end.ended_by, end.transferred_to) == ("agent_hung_up", None)
    assert error in (end.error or "")


@pytest.mark.parametrize("parameters", [
    {},
    {"Status": "canceled"},  # cancels only calls still queued or ringing
    {"Url": "https://example.com/next", "Method": "POST"},  # redirects are not simulated
    {"StatusCallback": "https://example.com/status"},
], ids=["nothing", "canceled", "url", "status-callback-only"])
def test_update_that_leaves_the_stream_running(parameters: dict[str, str]) -> None:
    assert call_end(parameters, CALLER) is None
