"""The simulated phone's speaker: 8000 bytes/s on the 20 ms clock, marks behind their audio, clear."""

from local.call_simulator.playback import PhonePlayback
from local.mulaw import FRAME_BYTES


def test_mark_echoes_on_the_tick_after_its_audio_finished_playing() -> None:
    playback = PhonePlayback()
    playback.enqueue(bytes(2 * FRAME_BYTES))
    assert playback.add_mark("a") is False
    playback.enqueue(bytes(FRAME_BYTES))
    playback.add_mark("b")
    ticks = [playback.tick() for _ in range(4)]
    assert [len(frame) for frame, _ in ticks] == [FRAME_BYTES, FRAME_BYTES, FRAME_BYTES, 0]
    assert [marks for _, marks in ticks] == [[], [], ["a"], ["b"]]
    assert playback.played_bytes == playback.received_bytes == 3 * FRAME_BYTES


def test_mark_behind_audio_already_played_echoes_at_once() -> None:
    playback = PhonePlayback()
    playback.enqueue(bytes(FRAME_BYTES))
    playback.tick()
    assert playback.add_mark("still playing") is False
    playback.tick()
    assert playback.add_mark("after the audio") is True


def test_partial_frame_plays_what_there_is() -> None:
    playback = PhonePlayback()
    playback.enqueue(b"\x01" * 100)
    playback.add_mark("end")
    assert playback.tick() == (b"\x01" * 100, [])
    assert playback.tick() == (b"", ["end"])


def test_clear_drops_unplayed_audio_and_hands_back_every_pending_mark() -> None:
    playback = PhonePlayback()
    for name in ("m1", "m2"):
        playback.enqueue(bytes(800))
        playback.add_mark(name)
    playback.tick()
    assert playback.clear() == (1600 - FRAME_BYTES, ["m1", "m2"])
    assert playback.tick() == (b"", [])
    assert (playback.received_bytes, playback.played_bytes, playback.cleared_bytes) == (1600, 160, 1440)


def test_audio_after_a_clear_plays_and_marks_count_from_it() -> None:
    playback = PhonePlayback()
    playback.enqueue(bytes(800))
    playback.tick()
    playback.clear()
    playback.enqueue(bytes(FRAME_BYTES))
    playback.add_mark("new")
    assert playback.tick() == (bytes(FRAME_BYTES), [])
    assert playback.tick() == (b"", ["new"])
