"""The price arithmetic on known numbers, and the environment override."""

from __future__ import annotations

import pytest

from voiceline.pricing import CallFacts, Prices, call_cost, current_prices

USAGE = {
    "input_tokens": 3_000, "output_tokens": 1_200,
    "input_token_details": {"text_tokens": 1_000, "audio_tokens": 2_000, "cached_tokens": 1_500,
                            "cached_tokens_details": {"text_tokens": 800, "audio_tokens": 700}},
    "output_token_details": {"text_tokens": 200, "audio_tokens": 1_000},
}


def test_openai_cost_bills_cached_input_at_the_cached_rate_and_the_rest_at_full_rate() -> None:
    cost = call_cost(CallFacts(model="gpt-realtime", direction="inbound", duration_s=0, usage=USAGE), Prices())
    assert cost["openai"]["text_in"] == pytest.approx(200 * 4.00 / 1e6)
    assert cost["openai"]["text_cached_in"] == pytest.approx(800 * 0.40 / 1e6)
    assert cost["openai"]["audio_in"] == pytest.approx(1_300 * 32.00 / 1e6)
    assert cost["openai"]["audio_cached_in"] == pytest.approx(700 * 0.40 / 1e6)
    assert cost["openai"]["text_out"] == pytest.approx(200 * 16.00 / 1e6)
    assert cost["openai"]["audio_out"] == pytest.approx(1_000 * 64.00 / 1e6)


def test_twilio_bills_whole_minutes_and_outbound_at_its_own_rate() -> None:
    prices = Prices()
    inbound = call_cost(CallFacts(model="gpt-realtime", direction="inbound", duration_s=61, usage={}), prices)
    outbound = call_cost(CallFacts(model="gpt-realtime", direction="outbound", duration_s=60, usage={}, amd=True),
                         prices)
    assert inbound["twilio"]["voice"] == pytest.approx(2 * 0.0085)
    assert inbound["twilio"]["media_stream"] == pytest.approx(2 * 0.004)
    assert outbound["twilio"] == pytest.approx({"voice": 0.014, "media_stream": 0.004, "amd": 0.0075, "total": 0.0255})


def test_aws_share_scales_with_duration_tools_and_events() -> None:
    prices = Prices()
    short = call_cost(CallFacts(model="gpt-realtime", direction="inbound", duration_s=60, usage={}), prices)
    busy = call_cost(CallFacts(model="gpt-realtime", direction="inbound", duration_s=120, usage={},
                               tool_calls=3, events_written=40), prices)
    assert busy["aws"]["fargate"] == pytest.approx(2 * short["aws"]["fargate"])
    assert busy["aws"]["lambda"] == pytest.approx(short["aws"]["lambda"] * 5 / 2)
    assert busy["aws"]["dynamodb"] == pytest.approx(44 * 0.625 / 1e6)
    assert busy["total"] == pytest.approx(busy["openai"]["total"] + busy["twilio"]["total"] + busy["aws"]["total"])


def test_the_mini_model_is_cheaper_and_an_unknown_model_is_costed_as_the_dearest() -> None:
    prices = Prices()
    facts = {"direction": "inbound", "duration_s": 0, "usage": USAGE}
    full = call_cost(CallFacts(model="gpt-realtime", **facts), prices)["openai"]["total"]
    mini = call_cost(CallFacts(model="gpt-realtime-mini", **facts), prices)["openai"]["total"]
    unknown = call_cost(CallFacts(model="gpt-future", **facts), prices)["openai"]["total"]
    assert mini < full
    assert unknown == full


def test_environment_overrides_one_rate_and_keeps_the_rest() -> None:
    overrides = '{"twilio_inbound_per_min": 0.02, "models": {"gpt-realtime": {"audio_in": 30}}}'
    prices = current_prices({"VOICELINE_PRICES": overrides})
    assert prices.twilio_inbound_per_min == 0.02
    assert prices.models["gpt-realtime"].audio_in == 30
    assert prices.models["gpt-realtime"].audio_out == 64.00
    assert prices.version == Prices().version


@pytest.mark.parametrize("value, message", [
    ("{not json", "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ('{"twilio_per_min": 1}', "unknown keys"),
    ('{"models": {"gpt-realtime": {"audio_inn": 1}}}', "unknown keys"),
])
def test_a_bad_override_is_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        current_prices({"VOICELINE_PRICES": value})


def test_every_model_an_agent_may_choose_has_its_own_price_row() -> None:
    from voiceline.agent_options import MODELS

    prices = Prices()
    assert set(MODELS) == set(prices.models)
    assert prices.model("gpt-realtime-2025-08-28") == prices.model("gpt-realtime")
    assert prices.model("gpt-realtime-mini-2025-10-06").audio_in < prices.model("gpt-realtime").audio_in
