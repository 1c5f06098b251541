"""Twilio Media Streams frames: parsing is strict, building is exact."""

import base64
import json

import pytest

from bridge import twilio_protocol as twilio


def _media(payload: str) -> str:
    return json.dumps({"event": "media", "streamSid": "MZ1", "media": {"track": "inbound", "payload": payload}})


def test_media_payload_is_passed_through_untouched() -> None:
    payload = base64.b64encode(bytes(range(160))).decode()
    assert twilio.media_payload(twilio.parse_frame(_media(payload))) is not None
    assert twilio.media_payload(twilio.parse_frame(_media(payload))) == payload


@pytest.mark.parametrize("raw", ["not json", "[]", '{"no_event": 1}', '{"event": 7}', None])
def test_malformed_frames_are_rejected_with_a_reason(raw: str | None) -> None:
    with pytest.raises(twilio.MalformedFrame):
        twilio.parse_frame(raw)


@pytest.mark.parametrize("payload", ["***", "abc", "", 'ab"}', "QUJD\n"])
def test_bad_base64_payload_is_rejected(payload: str) -> None:
    with pytest.raises(twilio.MalformedFrame):
        twilio.media_payload(twilio.parse_frame(_media(payload)))


def test_start_frame_gives_call_and_parameters() -> None:
    frame = {"event": "start", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "accountSid": "AC1",
        "customParameters": {"agentId": "a1", "streamToken": "t"}}}
    start = twilio.stream_start(frame)
    assert (start.stream_sid, start.call_sid, start.parameters["agentId"]) == ("MZ1", "CA1", "a1")


def test_start_frame_with_a_hostile_stream_sid_is_rejected() -> None:
    frame = {"event": "start", "start": {"streamSid": 'MZ"1', "callSid": "CA1", "accountSid": "AC1"}}
    with pytest.raises(twilio.MalformedFrame):
        twilio.stream_start(frame)


@pytest.mark.parametrize("size", range(0, 400, 7))
def test_templated_messages_equal_their_json_for_any_base64_payload(size: int) -> None:
    payload = base64.b64encode(bytes((index * 37 + size) % 256 for index in range(size))).decode()
    assert twilio.is_base64(payload)
    assert json.loads(twilio.media_message("MZ0a_-Z", payload)) == {
        "event": "media", "streamSid": "MZ0a_-Z", "media": {"payload": payload}}
    assert json.loads(twilio.mark_message("MZ0a_-Z", f"m{size}")) == {
        "event": "mark", "streamSid": "MZ0a_-Z", "mark": {"name": f"m{size}"}}


@pytest.mark.parametrize("text", ['AAAA"', "AAA\\", "AA==AA==", "AAAA\n", "AAA", "AAAA AAAA", "ÀAAA", 'A"}}'])
def test_text_that_could_break_a_template_is_not_base64(text: str) -> None:
    assert not twilio.is_base64(text)


def test_outbound_messages_are_valid_twilio_json() -> None:
    assert json.loads(twilio.media_message("MZ1", "AAEC")) == {
        "event": "media", "streamSid": "MZ1", "media": {"payload": "AAEC"}}
    assert json.loads(twilio.mark_message("MZ1", "m3")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m3"}}
    assert json.loads(twilio.clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
