"""What the agent's speech is swapped for once heard: all its words, or those heard before a cut."""

from __future__ import annotations

import json
from typing import Any

from bridge.spoken_history import SpokenHistory, heard_words

WORDS = "one two three four five six seven eight nine ten"


def _done(item_id: str = "item_1", transcript: str = WORDS) -> dict[str, Any]:
    return {"id": "resp_1", "status": "completed", "output": [
        {"id": item_id, "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_audio", "transcript": transcript}]}]}


def _sent(messages: list[str]) -> list[tuple[str, ...]]:
    """Each message as (type, item id, text), for comparing."""
    out = []
    for message in map(json.loads, messages):
        if message["type"] == "conversation.item.create":
            out.append((message["type"], message["previous_item_id"], message["item"]["content"][0]["text"]))
        else:
            out.append((message["type"], message["item_id"]))
    return out


def test_an_item_heard_to_its_end_is_swapped_once_for_all_its_words() -> None:
    history = SpokenHistory(forget_unheard=True)
    assert history.response_done(_done(), "item_1", 5000) == "item_1"
    assert _sent(history.swap("item_1")) == [("conversation.item.create", "item_1", WORDS),
                                             ("conversation.item.delete", "item_1")]
    assert history.swap("item_1") == []


def test_a_cut_keeps_the_words_heard_pro_rata_whether_it_came_before_or_after_the_response_ended() -> None:
    history = SpokenHistory(forget_unheard=True)
    history.response_done(_done(), "item_1", 5000)
    history.cut("item_1", 2000)
    assert _sent(history.swap("item_1"))[0] == ("conversation.item.create", "item_1", "one two three four")
    history.cut("item_2", 2500)  # the response was still running: it ends cancelled
    history.response_done(_done("item_2"), "item_2", 5000)
    assert _sent(history.swap("item_2"))[0] == ("conversation.item.create", "item_2", "one two three four five")


def test_with_unheard_audio_kept_a_cut_item_keeps_all_its_words() -> None:
    history = SpokenHistory(forget_unheard=False)
    history.response_done(_done(), "item_1", 5000)
    history.cut("item_1", 2000)
    assert _sent(history.swap("item_1"))[0] == ("conversation.item.create", "item_1", WORDS)


def test_a_cut_before_a_word_was_heard_deletes_the_audio_and_adds_no_text() -> None:
    history = SpokenHistory(forget_unheard=True)
    history.cut("item_1", 0)
    history.response_done(_done(), "item_1", 1200)
    assert _sent(history.swap("item_1")) == [("conversation.item.delete", "item_1")]


def test_items_that_never_reached_the_phone_or_belong_to_a_lost_session_are_left_alone() -> None:
    history = SpokenHistory(forget_unheard=True)
    call = {"output": [{"id": "item_2", "type": "function_call", "call_id": "c1", "name": "x", "arguments": "{}"}]}
    assert history.response_done(call, "item_1", 5000) is None
    assert history.response_done(_done("item_3"), "item_1", 5000) is None  # not the item being played
    assert history.response_done({"output": "odd"}, None, 0) is None
    history.response_done(_done(), "item_1", 5000)
    history.forget()  # a new session: item_1 went with the old one
    assert history.swap("item_1") == []


def test_heard_words_are_a_whole_word_prefix_in_proportion_to_the_audio_played() -> None:
    assert heard_words(WORDS, 0, 5000) == ""
    assert heard_words(WORDS, 2500, 5000) == "one two three four five"
    assert heard_words(WORDS, 4999, 5000) == "one two three four five six seven eight nine"
    assert heard_words(WORDS, 6000, 5000) == WORDS
