"""When the scripted caller talks: after the agent goes quiet, or over it when the script says so."""

from local.call_simulator.caller_script import CallerLine
from local.call_simulator.turn_taking import SILENCE_FRAME, CallerTurnTaking
from local.mulaw import FRAME_BYTES

CLIP = b"\x10" * (5 * FRAME_BYTES)  # 100 ms


def _tick(caller: CallerTurnTaking, now_ms: int, agent_playing: bool) -> bytes:
    caller.hear(now_ms, FRAME_BYTES if agent_playing else 0)
    return caller.next_frame(now_ms)


def test_caller_waits_until_the_greeting_has_been_quiet_for_quiet_ms() -> None:
    transcript: list[str] = []
    caller = CallerTurnTaking([CallerLine("Hello?", CLIP)], transcript.append, quiet_ms=600)
    frames = {now: _tick(caller, now, agent_playing=now < 400) for now in range(0, 1200, 20)}
    assert (caller.greeting.started_ms, caller.greeting.finished_ms) == (0, 400)
    assert caller.turns[0].caller_started_ms == 1000
    assert frames[980] == SILENCE_FRAME and frames[1000] == CLIP[:FRAME_BYTES]
    assert caller.turns[0].caller_finished_ms == 1100 and frames[1100] == SILENCE_FRAME
    assert transcript == ["agent: ▶ speaking", "agent: ■ finished", "caller: Hello?"]


def test_a_short_gap_in_agent_audio_does_not_end_its_reply() -> None:
    caller = CallerTurnTaking([CallerLine("Hello?", CLIP)], lambda line: None, quiet_ms=600)
    for now in range(0, 1500, 20):
        _tick(caller, now, agent_playing=now < 200 or 500 <= now < 700)
    assert caller.greeting.finished_ms == 700
    assert caller.turns[0].caller_started_ms == 1300


def test_barge_in_starts_the_line_over_the_reply_and_a_clear_cuts_it() -> None:
    lines = [CallerLine("One", CLIP), CallerLine("Two", CLIP, interrupt_after_ms=200)]
    transcript: list[str] = []
    caller = CallerTurnTaking(lines, transcript.append, quiet_ms=600)
    cleared_at = None
    for now in range(0, 3000, 20):
        if now == 1160:
            caller.cleared(now, dropped_bytes=4000)
            cleared_at = now
        reply_1 = 900 <= now < 2000 and cleared_at is None
        reply_2 = 1400 <= now < 1500
        _tick(caller, now, agent_playing=now < 100 or reply_1 or reply_2)
        if caller.finished:
            break
    first, second = caller.turns
    assert (first.caller_started_ms, first.caller_finished_ms, first.reply.started_ms) == (700, 800, 900)
    assert (second.caller_started_ms, second.barged_in) == (1100, True)
    assert (first.reply.finished_ms, first.reply.cut_off) == (1160, True)
    assert (second.reply.started_ms, second.reply.finished_ms, second.reply.cut_off) == (1400, 1500, False)
    assert second.reply_latency_ms == 1400 - 1200
    assert caller.finished and now == 2100
    assert transcript.count("agent: ⟂ cut off (clear)") == 1


def test_barge_in_line_starts_at_quiet_when_the_reply_ends_first() -> None:
    lines = [CallerLine("Two", CLIP, interrupt_after_ms=5000)]
    caller = CallerTurnTaking(lines, lambda line: None, quiet_ms=600)
    for now in range(0, 1000, 20):
        _tick(caller, now, agent_playing=now < 100)
    assert caller.turns[0].caller_started_ms == 700 and not caller.turns[0].barged_in


def test_clear_with_nothing_to_drop_changes_nothing() -> None:
    transcript: list[str] = []
    caller = CallerTurnTaking([], transcript.append)
    caller.hear(0, FRAME_BYTES)
    caller.cleared(10, dropped_bytes=0)
    assert caller.greeting.finished_ms is None and transcript == ["agent: ▶ speaking"]


def test_call_is_finished_when_the_greeting_ends_and_there_is_no_line() -> None:
    caller = CallerTurnTaking([], lambda line: None, quiet_ms=100)
    for now in range(0, 200, 20):
        _tick(caller, now, agent_playing=now < 40)
    assert caller.greeting_finished and caller.finished


def test_last_partial_frame_is_padded_with_silence() -> None:
    caller = CallerTurnTaking([CallerLine("Hi", b"\x10" * 200)], lambda line: None, quiet_ms=20)
    caller.hear(0, FRAME_BYTES)
    caller.hear(20, 0)
    caller.hear(40, 0)
    assert caller.next_frame(40) == b"\x10" * FRAME_BYTES
    assert caller.next_frame(60) == b"\x10" * 40 + SILENCE_FRAME[:120]
    assert caller.turns[0].caller_finished_ms == 65
