"""OpenAI Realtime GA client events built from an agent."""

import json

from bridge import realtime_protocol as realtime
from voiceline.models import Agent


def _agent(**overrides: object) -> Agent:
    fields = {"tenant_id": "t1", "name": "Ava", "instructions": "Be kind", "greeting": "Hello",
              "voice": "cedar", "speed": 1.1, "language": "en-GB", "noise_reduction": "far_field",
              "turn_detection": {"type": "semantic_vad", "eagerness": "low"}}
    fields.update(overrides)
    return Agent("a1", **fields)


def test_session_update_is_ga_shaped_with_pcmu_both_ways() -> None:
    session = realtime.session_update(_agent(), "Be kind to +1555")["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "cedar", "speed": 1.1}
    assert session["audio"]["input"]["turn_detection"] == {"type": "semantic_vad", "eagerness": "low"}
    assert session["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert session["audio"]["input"]["transcription"]["language"] == "en"
    assert session["instructions"] == "Be kind to +1555"
    beta_only = {"modalities", "input_audio_format", "output_audio_format", "voice", "temperature",
                 "turn_detection", "input_audio_transcription"}
    assert not beta_only & session.keys()


def test_transcription_expects_the_agents_override_language() -> None:
    session = realtime.session_update(_agent(transcription_language="es"), "Hola")["session"]
    assert session["audio"]["input"]["transcription"]["language"] == "es"


def test_no_noise_reduction_is_sent_as_null() -> None:
    session = realtime.session_update(_agent(noise_reduction=None), "x")["session"]
    assert session["audio"]["input"]["noise_reduction"] is None


def test_appended_audio_carries_the_payload_verbatim() -> None:
    assert json.loads(realtime.append_audio("AAEC/w==")) == {"type": "input_audio_buffer.append", "audio": "AAEC/w=="}


def test_barge_in_cancels_only_an_active_response() -> None:
    active = [json.loads(m) for m in realtime.barge_in("item_1", 420, response_active=True)]
    assert active == [{"type": "response.cancel"},
                      {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0,
                       "audio_end_ms": 420}]
    idle = [json.loads(m)["type"] for m in realtime.barge_in("item_1", 420, response_active=False)]
    assert idle == ["conversation.item.truncate"]


def test_a_response_is_steered_by_a_system_message_never_by_its_own_instructions_or_tools() -> None:
    steer = realtime.system_message(realtime.greeting("Thanks for calling"))
    assert steer["item"]["role"] == "system" and "Thanks for calling" in steer["item"]["content"][0]["text"]
    assert realtime.response_create() == {"type": "response.create"}
    # Last words: the session's tools stay declared (the prompt stays cached), but none may be called.
    assert realtime.response_create(allow_tools=False) == {"type": "response.create",
                                                           "response": {"tool_choice": "none"}}


def test_function_calls_are_read_from_a_completed_response_in_order() -> None:
    response = {"status": "completed", "output": [
        {"type": "message", "id": "m1"},
        {"type": "function_call", "status": "completed", "call_id": "c1", "name": "get_pricing",
         "arguments": '{"service": "tap repair"}'},
        {"type": "function_call", "status": "in_progress", "call_id": "c2", "name": "half_done"},
        {"type": "function_call", "status": "completed", "call_id": "c3", "name": "lookup_customer"},
        "garbage",
    ]}
    calls = realtime.function_calls(response)
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("c1", "get_pricing", '{"service": "tap repair"}'), ("c3", "lookup_customer", "{}")]
    assert realtime.function_calls(None) == [] and realtime.function_calls({"output": "x"}) == []


def test_function_call_output_is_a_conversation_item_with_json_text() -> None:
    event = realtime.function_call_output("c1", {"price": 90})
    assert event["item"] == {"type": "function_call_output", "call_id": "c1", "output": '{"price": 90}'}


def test_session_update_carries_the_agents_tools() -> None:
    tool = {"type": "function", "name": "get_pricing", "description": "d", "parameters": {"type": "object"}}
    session = realtime.session_update(_agent(), "x", [tool])["session"]
    assert session["tools"] == [tool] and session["tool_choice"] == "auto"
