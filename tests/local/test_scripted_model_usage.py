"""The scripted model's usage rules (local/scripted_model/usage.py), pinned on known conversations."""

from __future__ import annotations

from typing import Any

from local.scripted_model import ScriptedModelServer
from local.scripted_model.context import ContextItem, ConversationContext
from local.scripted_model.usage import (
    Tokens,
    UsageMeter,
    item_tokens,
    output_tokens,
    retention_target,
    usage,
)
from tests.local.test_scripted_model import PCMU_WITH_TRANSCRIPTION, SCRIPT, ModelClient

PROMPT = "x" * 400  # 100 text tokens of instructions and tools


def _conversation() -> list[ContextItem]:
    """Caller 3 s, agent 5 s with a 40-character transcript, a function call and its output."""
    return [ContextItem("u1", "user", audio_ms=3000),
            ContextItem("a1", "assistant", text="a" * 40, audio_ms=5000),
            ContextItem("f1", "tool", text="{" + "b" * 18 + "}"),
            ContextItem("o1", "tool", text="c" * 41)]


def test_audio_is_10_tokens_a_second_from_the_caller_and_20_from_the_agent_and_text_is_chars_over_4() -> None:
    caller, agent, call, output = _conversation()
    assert item_tokens(caller) == Tokens(text=0, audio=30)
    assert item_tokens(agent) == Tokens(text=10, audio=100)
    assert item_tokens(call) == Tokens(text=5, audio=0)
    assert item_tokens(output) == Tokens(text=11, audio=0)  # 41 / 4 rounded up
    assert output_tokens("d" * 20, 2500) == Tokens(text=5, audio=50)


def test_every_response_reads_the_whole_conversation_and_the_unchanged_prefix_is_cached() -> None:
    meter = UsageMeter()
    items = _conversation()
    first = meter.read_input(PROMPT, items[:1])
    assert (first.total, first.cached) == (Tokens(100, 30), Tokens(0, 0))
    second = meter.read_input(PROMPT, items)
    assert second.total == Tokens(100 + 10 + 5 + 11, 30 + 100)
    assert second.cached == Tokens(100, 30)  # what the first response read; the rest is new

    reported = usage(second, Tokens(5, 50))
    assert reported["input_tokens"] == 256 and reported["output_tokens"] == 55 and reported["total_tokens"] == 311
    assert reported["input_token_details"]["cached_tokens"] == 130
    assert reported["input_token_details"]["cached_tokens_details"] == {"text_tokens": 100, "audio_tokens": 30,
                                                                        "image_tokens": 0}
    assert reported["output_token_details"] == {"text_tokens": 5, "audio_tokens": 50}


def test_changed_instructions_bust_the_cache_for_everything_after_them() -> None:
    meter = UsageMeter()
    items = _conversation()
    meter.read_input(PROMPT, items)
    again = meter.read_input(PROMPT, items)
    assert again.cached == again.total
    changed = meter.read_input(PROMPT + "It is now 10:42.", items)
    assert changed.cached == Tokens(0, 0)
    # A new fact as a conversation item instead leaves the whole earlier prefix cached.
    fact = ContextItem("s1", "system", text="It is now 10:42.")
    appended = UsageMeter()
    appended.read_input(PROMPT, items)
    with_fact = appended.read_input(PROMPT, [*items, fact])
    assert with_fact.cached == Tokens(100 + 10 + 5 + 11, 130) and with_fact.total == Tokens(130, 130)


def test_a_truncated_agent_item_counts_only_the_audio_heard_and_loses_its_transcript() -> None:
    meter = UsageMeter()
    caller, agent = ContextItem("u1", "user", audio_ms=3000), ContextItem("a1", "assistant", "a" * 40, 5000)
    whole = meter.read_input(PROMPT, [caller, agent, ContextItem("u2", "user", audio_ms=1000)])
    assert whole.total == Tokens(110, 140)

    cut_meter = UsageMeter()
    agent.truncated_at_ms = 1200
    cut = cut_meter.read_input(PROMPT, [caller, agent, ContextItem("u2", "user", audio_ms=1000)])
    assert cut.total == Tokens(100, 30 + 24 + 10)
    assert item_tokens(agent) == Tokens(text=0, audio=24)


def test_truncation_auto_drops_just_enough_and_a_retention_ratio_drops_down_to_its_share() -> None:
    # A 500-token window, 100 of them instructions: 400 post-instruction tokens fit.
    assert retention_target("auto", 400, 100, 500) is None
    assert retention_target("auto", 430, 100, 500) == 400
    ratio = {"type": "retention_ratio", "retention_ratio": 0.5}
    assert retention_target(ratio, 430, 100, 500) == 200
    assert retention_target({**ratio, "token_limits": {"post_instructions": 300}}, 310, 100, 500) == 150
    assert retention_target("disabled", 10_000, 100, 500) is None


def test_dropping_the_oldest_items_keeps_the_newest_and_busts_the_cache_once() -> None:
    context = ConversationContext()
    for index in range(6):  # six caller turns of 10 s: 100 tokens each
        context.add(ContextItem(f"u{index}", "user", audio_ms=10_000))
    meter = UsageMeter()
    meter.read_input(PROMPT, context.items)
    dropped = context.drop_oldest(250, lambda item: item_tokens(item).total)
    assert dropped == 4 and [item.id for item in context.items] == ["u4", "u5"]
    after = meter.read_input(PROMPT, context.items)
    assert after.total == Tokens(100, 200) and after.cached == Tokens(100, 0)  # only the instructions stay cached
    context.add(ContextItem("u6", "user", audio_ms=10_000))
    next_turn = meter.read_input(PROMPT, context.items)
    assert next_turn.cached == Tokens(100, 200)


# ---- over a real socket: what response.done reports -----------------------------------------------

GREETING_MS = 3776  # local/audio/greeting.ulaw
GREETING_TEXT = "Thanks for calling Bright Plumbing, this is Ava. How can I help?"  # 64 characters


async def _greet_then_answer(client: ModelClient, session: dict[str, Any],
                             truncate_at_ms: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Greeting, an optional truncate of it, a caller text message, a second response: both usages."""
    await client.update_session({**PCMU_WITH_TRANSCRIPTION, "instructions": "I" * 400, **session})
    await client.send({"type": "response.create"})
    greeting = (await client.until("response.done"))[-1]["response"]
    if truncate_at_ms is not None:
        await client.send({"type": "conversation.item.truncate", "item_id": greeting["output"][0]["id"],
                           "content_index": 0, "audio_end_ms": truncate_at_ms})
        await client.until("conversation.item.truncated")
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi there!"}]}})
    await client.until("conversation.item.done")
    await client.send({"type": "response.create"})
    answer = (await client.until("response.done"))[-1]["response"]
    return greeting["usage"], answer["usage"]


async def test_response_done_reports_the_known_counts_and_a_truncate_shrinks_the_next_input() -> None:
    async with ScriptedModelServer(SCRIPT, "127.0.0.1", 0) as model, ModelClient.open(model) as client:
        greeting, answer = await _greet_then_answer(client, {}, truncate_at_ms=1000)
    assert greeting["input_token_details"] == {"text_tokens": 100, "audio_tokens": 0, "image_tokens": 0,
                                               "cached_tokens": 0, "cached_tokens_details": {
                                                   "text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}}
    assert greeting["output_token_details"] == {"text_tokens": 16, "audio_tokens": GREETING_MS * 20 // 1000}
    # The heard second of the greeting (20 tokens, its transcript gone) and "Hi there!" (3 tokens).
    assert answer["input_token_details"]["text_tokens"] == 100 + 3
    assert answer["input_token_details"]["audio_tokens"] == 20
    assert answer["input_token_details"]["cached_tokens"] == 100


async def test_with_a_retention_ratio_the_oldest_items_drop_out_when_the_context_is_full() -> None:
    # A 180-token window: 100 of instructions leave 80 for the conversation; the greeting (16 + 75)
    # plus "Hi there!" (3) pass it, so the conversation shrinks to half of 80, and the greeting goes.
    async with ScriptedModelServer(SCRIPT, "127.0.0.1", 0, context_window=180) as model, \
            ModelClient.open(model) as client:
        _, answer = await _greet_then_answer(
            client, {"truncation": {"type": "retention_ratio", "retention_ratio": 0.5}}, truncate_at_ms=None)
        [record] = model.sessions
    assert answer["input_tokens"] == 103 and answer["input_token_details"]["audio_tokens"] == 0
    assert answer["input_token_details"]["cached_tokens"] == 100  # the instructions; the rest is new
    assert record.record.items_dropped == 1


def test_an_item_put_after_another_goes_right_after_it_and_a_deleted_one_leaves_no_gap() -> None:
    context = ConversationContext()
    for item_id in ("u1", "a1", "u2"):
        context.add(ContextItem(item_id, "user"))
    context.add(ContextItem("t1", "assistant"), after="a1")
    context.add(ContextItem("s0", "system"), after="root")
    assert [item.id for item in context.items] == ["s0", "u1", "a1", "t1", "u2"]
    assert context.delete("a1") == "u1"
    assert context.delete("s0") is None
    assert [item.id for item in context.items] == ["u1", "t1", "u2"]


async def test_agent_audio_swapped_for_its_text_is_re_read_as_text_with_the_prefix_before_it_still_cached() -> None:
    async with ScriptedModelServer(SCRIPT, "127.0.0.1", 0) as model, ModelClient.open(model) as client:
        await client.update_session({**PCMU_WITH_TRANSCRIPTION, "instructions": "I" * 400})
        await client.send({"type": "response.create"})
        greeting_id = (await client.until("response.done"))[-1]["response"]["output"][0]["id"]
        await client.send({"type": "conversation.item.create", "previous_item_id": greeting_id, "item": {
            "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": GREETING_TEXT}]}})
        added = (await client.until("conversation.item.added"))[-1]
        await client.send({"type": "conversation.item.delete", "item_id": greeting_id})
        assert (await client.until("conversation.item.deleted"))[-1]["item_id"] == greeting_id
        await client.send({"type": "conversation.item.delete", "item_id": greeting_id})
        gone = (await client.until("error"))[-1]["error"]
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi there!"}]}})
        await client.until("conversation.item.done")
        await client.send({"type": "response.create"})
        answer = (await client.until("response.done"))[-1]["response"]["usage"]
        [session] = model.sessions
    assert added["previous_item_id"] == greeting_id
    assert gone["code"] == "invalid_value" and gone["param"] == "item_id"
    assert session.record.deletes == [greeting_id]
    # The greeting as 16 text tokens, not 75 audio ones; "Hi there!" 3; the instructions still cached.
    assert answer["input_token_details"]["text_tokens"] == 100 + 16 + 3
    assert answer["input_token_details"]["audio_tokens"] == 0
    assert answer["input_token_details"]["cached_tokens"] == 100
