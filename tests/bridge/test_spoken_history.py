"""When the agent's speech is swapped for its words: only once its response is done and its playback is over."""

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


def test_the_swap_waits_for_both_the_end_of_the_response_and_the_end_of_playback_in_either_order() -> None:
    swap = [("conversation.item.create", "item_1", WORDS), ("conversation.item.delete", "item_1")]
    history = SpokenHistory(forget_unheard=True)
    assert history.response_done(_done(), "item_1", 5000) == []  # still playing
    assert _sent(history.played("item_1", 5000)) == swap

    history = SpokenHistory(forget_unheard=True)
    assert history.played("item_1", 2000) == []  # the phone caught up while the model was still speaking
    assert history.response_done(_done(), "item_1", 5000) == []  # 3 s of it still to play
    assert _sent(history.played("item_1", 5000)) == swap
    assert history.played("item_1", 5000) == []  # swapped once only


def test_a_cut_keeps_the_words_heard_pro_rata_or_all_of_them_when_unheard_audio_is_kept() -> None:
    history = SpokenHistory(forget_unheard=True)
    assert history.response_done(_done(), "item_1", 5000) == []
    assert _sent(history.cut("item_1", 2000)) == [("conversation.item.create", "item_1", "one two three four"),
                                                  ("conversation.item.delete", "item_1")]
    history = SpokenHistory(forget_unheard=False)
    history.response_done(_done(), "item_1", 5000)
    assert _sent(history.cut("item_1", 2000))[0] == ("conversation.item.create", "item_1", WORDS)


def test_a_cut_before_a_word_was_heard_deletes_the_audio_and_adds_no_text() -> None:
    history = SpokenHistory(forget_unheard=True)
    assert history.cut("item_1", 0) == []  # the cancelled response is not done yet
    assert _sent(history.response_done(_done(), "item_1", 1200)) == [("conversation.item.delete", "item_1")]


def test_items_that_never_reached_the_phone_and_other_output_are_left_alone() -> None:
    history = SpokenHistory(forget_unheard=True)
    call = {"output": [{"id": "item_2", "type": "function_call", "call_id": "c1", "name": "x", "arguments": "{}"}]}
    assert history.response_done(call, "item_1", 5000) == []
    assert history.response_done(_done("item_3"), "item_1", 5000) == []  # not the item being played
    assert history.response_done({"output": "odd"}, None, 0) == []
    history.played("item_1", 5000)
    history.forget()  # a new session: item_1 is gone with the old one
    assert history.response_done(_done(), "item_1", 5000) == []


def test_heard_words_are_a_whole_word_prefix_in_proportion_to_the_audio_played() -> None:
    assert heard_words(WORDS, 0, 5000) == ""
    assert heard_words(WORDS, 2500, 5000) == "one two three four five"
    assert heard_words(WORDS, 4999, 5000) == "one two three four five six seven eight nine"
    assert heard_words(WORDS, 6000, 5000) == WORDS
