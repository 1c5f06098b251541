"""PlaybackTracker: what the caller heard, from Twilio's mark echoes."""

from bridge.playback import MARK_EVERY_BYTES, MARK_EVERY_MS, PlaybackTracker, base64_decoded_length

DELTA_BYTES = 800  # 100 ms of μ-law, the size of OpenAI's usual audio delta


def test_a_mark_follows_every_mark_interval_of_audio_not_every_delta() -> None:
    tracker = PlaybackTracker()
    deltas_per_mark = MARK_EVERY_BYTES // DELTA_BYTES
    marks = [tracker.on_agent_audio("item_1", DELTA_BYTES) for _ in range(3 * deltas_per_mark)]
    named = [mark for mark in marks if mark is not None]
    assert len(named) == 3
    assert all(mark is not None for mark in marks[deltas_per_mark - 1::deltas_per_mark])


def test_marks_echoed_in_order_advance_played_ms() -> None:
    tracker = PlaybackTracker()
    tracker.on_agent_audio("item_1", DELTA_BYTES)
    first = tracker.on_agent_audio("item_1", DELTA_BYTES)
    tracker.on_agent_audio("item_1", DELTA_BYTES)
    assert first is not None and tracker.generated_ms == 300
    assert tracker.on_mark(first)
    assert tracker.played_ms == 200
    assert tracker.has_unplayed_audio  # the third delta has no mark yet
    rest = tracker.mark_rest()
    assert rest is not None and tracker.mark_rest() is None
    assert tracker.on_mark(rest)
    assert tracker.played_ms == 300
    assert not tracker.has_unplayed_audio


def test_a_short_response_is_marked_only_at_its_end() -> None:
    tracker = PlaybackTracker()
    assert tracker.on_agent_audio("item_1", 160) is None
    assert tracker.has_unplayed_audio
    end = tracker.mark_rest()
    assert end is not None
    assert tracker.on_mark(end)
    assert (tracker.played_ms, tracker.has_unplayed_audio) == (20, False)


def test_marks_echoed_after_clear_do_not_count_as_played() -> None:
    tracker = PlaybackTracker()
    tracker.on_agent_audio("item_1", DELTA_BYTES)
    first = tracker.on_agent_audio("item_1", DELTA_BYTES)
    assert first is not None
    pending = [mark for _ in range(5) if (mark := tracker.on_agent_audio("item_1", DELTA_BYTES))]
    tracker.on_mark(first)
    item_id, heard_ms = tracker.cut()
    assert (item_id, heard_ms) == ("item_1", MARK_EVERY_MS)
    assert not tracker.has_unplayed_audio  # unmarked audio is forgotten with the pending marks
    assert tracker.mark_rest() is None
    # Twilio echoes every pending mark at once after a clear: none of that audio was heard.
    assert pending and not any(tracker.on_mark(name) for name in pending)
    assert tracker.played_ms == MARK_EVERY_MS


def test_barge_in_truncates_at_played_ms_capped_at_generated() -> None:
    tracker = PlaybackTracker()
    tracker.on_agent_audio("item_1", 400)
    tracker.played_ms = 10_000  # however the estimate drifts, OpenAI rejects more than was generated
    assert tracker.cut() == ("item_1", 50)


def test_a_new_item_restarts_the_count() -> None:
    tracker = PlaybackTracker()
    tracker.on_agent_audio("item_1", DELTA_BYTES)
    old = tracker.mark_rest()
    assert old is not None
    tracker.on_mark(old)
    assert tracker.on_agent_audio("item_2", 160) is None
    assert (tracker.item_id, tracker.generated_ms, tracker.played_ms) == ("item_2", 20, 0)
    assert tracker.has_unplayed_audio


def test_an_unknown_mark_is_not_ours() -> None:
    tracker = PlaybackTracker()
    tracker.on_agent_audio("item_1", DELTA_BYTES)
    tracker.mark_rest()
    assert tracker.on_mark("someone-elses") is False


def test_base64_decoded_length_without_decoding() -> None:
    import base64

    for size in range(0, 12):
        assert base64_decoded_length(base64.b64encode(b"x" * size).decode()) == size
