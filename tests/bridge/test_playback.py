"""PlaybackTracker: what the caller heard, from Twilio's mark echoes."""

from bridge.playback import PlaybackTracker, base64_decoded_length


def test_marks_echoed_in_order_advance_played_ms() -> None:
    tracker = PlaybackTracker()
    first = tracker.on_agent_audio("item_1", 800)
    second = tracker.on_agent_audio("item_1", 800)
    assert tracker.generated_ms == 200
    assert tracker.on_mark(first)
    assert tracker.played_ms == 100
    assert tracker.has_unplayed_audio
    assert tracker.on_mark(second)
    assert tracker.played_ms == 200
    assert not tracker.has_unplayed_audio


def test_marks_echoed_after_clear_do_not_count_as_played() -> None:
    tracker = PlaybackTracker()
    first = tracker.on_agent_audio("item_1", 800)
    pending = [tracker.on_agent_audio("item_1", 800) for _ in range(3)]
    tracker.on_mark(first)
    item_id, heard_ms = tracker.cut()
    assert (item_id, heard_ms) == ("item_1", 100)
    # Twilio echoes every pending mark at once after a clear: none of that audio was heard.
    assert not any(tracker.on_mark(name) for name in pending)
    assert tracker.played_ms == 100


def test_barge_in_truncates_at_played_ms_capped_at_generated() -> None:
    tracker = PlaybackTracker()
    tracker.on_agent_audio("item_1", 400)
    tracker.played_ms = 10_000  # however the estimate drifts, OpenAI rejects more than was generated
    assert tracker.cut() == ("item_1", 50)


def test_a_new_item_restarts_the_count() -> None:
    tracker = PlaybackTracker()
    old = tracker.on_agent_audio("item_1", 800)
    tracker.on_mark(old)
    tracker.on_agent_audio("item_2", 160)
    assert (tracker.item_id, tracker.generated_ms, tracker.played_ms) == ("item_2", 20, 0)


def test_an_unknown_mark_is_not_ours() -> None:
    tracker = PlaybackTracker()
    tracker.on_agent_audio("item_1", 800)
    assert tracker.on_mark("someone-elses") is False


def test_base64_decoded_length_without_decoding() -> None:
    import base64

    for size in range(0, 12):
        assert base64_decoded_length(base64.b64encode(b"x" * size).decode()) == size
