"""The load benchmark's own machinery works, so `make bench` cannot rot silently (not timed: the bench has figures)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.load_bench import processes, report
from local.load_bench.run import LoadBench, LoadFigures, arrivals
from local.load_bench.stamps import BYE, STAMP_BYTES, StampedAudio, read_stamp


def test_a_stamp_reads_back_from_the_head_of_its_payload() -> None:
    payload = StampedAudio(160).payload(7, 42, 123_456_789, BYE, trigger_ns=99)
    audio = base64.b64decode(payload, validate=True)
    stamp = read_stamp(payload)
    assert len(audio) == 160 and audio[STAMP_BYTES:] == b"\xff" * (160 - STAMP_BYTES)
    assert stamp is not None
    assert (stamp.call, stamp.sequence, stamp.sent_ns, stamp.trigger_ns, stamp.flags) == (7, 42, 123_456_789, 99, BYE)


def test_audio_without_a_stamp_reads_as_none() -> None:
    assert read_stamp(base64.b64encode(b"\xff" * 160).decode()) is None
    assert read_stamp("not base64!") is None


def test_calls_arrive_at_random_at_the_given_rate_the_same_way_on_every_run() -> None:
    times = arrivals(3000, 30.0)
    assert times == arrivals(3000, 30.0) and times[0] == 0.0 and times == sorted(times)
    assert 95 < times[-1] < 105  # 3,000 calls at 30 a second
    # Their phases within a 20 ms frame spread over all of it, instead of the 3 of calls exactly 1/30 s apart.
    phases = {int(at_s * 1000) % 20 for at_s in times}
    assert phases == set(range(20))


def test_the_overheads_of_runs_at_the_same_count_are_pooled_for_their_tail() -> None:
    runs = [LoadFigures(100, 20.0, greeting_overhead_us=[1000 * ms for ms in range(1, 101)],
                        steady_turn_overhead_us=[2000]),
            LoadFigures(100, 20.0, greeting_overhead_us=[1000 * ms for ms in range(101, 201)],
                        steady_turn_overhead_us=[4000]),
            LoadFigures(150, 20.0, greeting_overhead_us=[500])]  # ran once: its row says it all
    [line] = report.pooled(runs)
    assert line.startswith("100 calls, 2 runs pooled:")
    assert "p50/p95/p99 100.0/190.0/198.0 (200 greetings)" in line  # nearest rank, of 1..200 ms
    assert "(2 turns)" in line
    assert line in report.note(runs, pinned=False)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_every_thread_a_process_has_and_will_start_is_pinned_and_runs_only_when_a_core_is_idle() -> None:
    script = ("import sys, threading, time\n"
              "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
              "print('up', flush=True); sys.stdin.readline()\n"
              "os = __import__('os')\n"
              "late = threading.Thread(target=lambda: print(os.sched_getscheduler(0), *os.sched_getaffinity(0), "
              "flush=True))\n"
              "late.start(); late.join()\n")
    stand_in = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
    try:
        assert stand_in.stdout.readline() == "up\n"
        threads = [int(task.name) for task in Path(f"/proc/{stand_in.pid}/task").iterdir()]
        assert len(threads) == 2

        core = min(os.sched_getaffinity(0))
        processes.pin(stand_in.pid, {core})
        processes.run_when_idle(stand_in.pid)

        assert {os.sched_getscheduler(thread) for thread in threads} == {os.SCHED_IDLE}
        assert all(os.sched_getaffinity(thread) == {core} for thread in threads)
        stand_in.stdin.write("\n")
        stand_in.stdin.flush()
        policy, *cores = map(int, stand_in.stdout.readline().split())
        assert (policy, cores) == (os.SCHED_IDLE, [core])  # a thread started later inherits both
    finally:
        stand_in.kill()
        stand_in.wait()


def test_three_calls_through_the_bridge_lose_nothing_and_report_latencies(tmp_path: Path) -> None:
    with LoadBench(log_dir=tmp_path) as bench:
        figures = bench.run(3, 3.0)
    assert figures.errors == []
    assert figures.frames_sent > 3 * 100  # 20 ms frames for 3 s each
    assert (figures.caller_frames_lost, figures.agent_deltas_lost) == (0, 0)
    assert figures.deltas_received > 3  # the greetings at least, in 100 ms deltas
    assert figures.caller_to_model_us and figures.model_to_caller_us
    # The steady window (every call up: 0.1 s ramp + 1 s settle to 2.75 s) is a part of the whole call.
    assert 0 < len(figures.steady_caller_to_model_us) < len(figures.caller_to_model_us)
    assert 0 < len(figures.steady_model_to_caller_us) < len(figures.model_to_caller_us)
    assert len(figures.greeting_overhead_us) == len(figures.greeting_less_reads_us) == 3
    # Each Call says how long the bridge's set-up reads took (next to nothing here: the warm-up call read the agent,
    # and these calls' facts vouch for that copy), a part of its greeting's overhead.
    assert all(0 <= less <= whole for less, whole in
               zip(figures.greeting_less_reads_us, figures.greeting_overhead_us, strict=True))
    assert figures.bridge_cpu > 0 and figures.bridge_rss_bytes > 0
    assert figures.pool_misses == 0  # the default pool of four outnumbers three calls, refilled between them
    assert len(report.row(figures)) == len(report.COLUMNS)


def test_a_soak_replaces_each_caller_as_it_hangs_up_and_samples_memory_throughout(tmp_path: Path) -> None:
    with LoadBench(log_dir=tmp_path) as bench:
        figures = bench.soak(calls=2, minutes=0.15, call_seconds=3.0)  # 9 s: three calls on each line
    assert figures.errors == []
    assert figures.calls_served == 6
    assert figures.frames_sent == figures.frames_received > 6 * 100
    assert figures.deltas_sent == figures.deltas_received > 6
    assert len(figures.rss) >= 2 and all(rss > 0 for _, rss in figures.rss)
    assert figures.growth_bytes == figures.rss[-1][1] - figures.rss_after_first_turnover()
    assert len(report.soak_rows(figures)) == len(figures.rss) and "6 calls served" in report.soak_note(figures)


def test_three_calls_through_the_bare_relay_lose_nothing_and_read_no_call(tmp_path: Path) -> None:
    """The floor the bridge is read against runs the same calls, with the same stamps, in the bridge's place."""
    with LoadBench(log_dir=tmp_path, bare=True) as bench:
        figures = bench.run(3, 3.0)
        log = (tmp_path / next(path.name for path in tmp_path.iterdir() if path.name.startswith("bridge-"))).read_text()
    assert figures.errors == []
    assert figures.frames_sent > 3 * 100 and (figures.caller_frames_lost, figures.agent_deltas_lost) == (0, 0)
    assert len(figures.greeting_overhead_us) == 3
    assert figures.greeting_less_reads_us == []  # it reads no agent and no Call
    assert figures.pool_misses is None  # and keeps no pool
    assert figures.bridge_cpu > 0
    assert "Traceback" not in log
