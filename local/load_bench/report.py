"""The load benchmark's table: one row per run, with what each figure means in the note."""

from __future__ import annotations

import os

from local.load_bench.run import LoadFigures, SoakFigures
from voiceline.stats import percentile

COLUMNS = ("calls", "caller→model ms p50/p99/max", "model→caller ms p50/p99/max",
           "whole-call p99 ms c→m/m→c", "lost c→m", "lost m→c",
           "bridge CPU %", "bridge CPU µs/frame", "bridge RSS MiB", "KiB/call", "harness CPU %", "model CPU %",
           "greeting overhead ms p50/p99", "less DynamoDB reads ms p50/p99",
           "turn overhead ms p50/p99 (whole-call p99)", "pool misses")


def _ms(values: list[int], *fractions: float) -> str:
    if not values:
        return "-"
    return "/".join(f"{(percentile(values, fraction) or 0) / 1000:.1f}" for fraction in fractions)


def row(figures: LoadFigures) -> tuple[object, ...]:
    return (figures.calls, _ms(figures.steady_caller_to_model_us, 0.5, 0.99, 1.0),
            _ms(figures.steady_model_to_caller_us, 0.5, 0.99, 1.0),
            f"{_ms(figures.caller_to_model_us, 0.99)}/{_ms(figures.model_to_caller_us, 0.99)}",
            figures.caller_frames_lost, figures.agent_deltas_lost,
            f"{figures.bridge_cpu:.0f}", f"{figures.bridge_cpu_us_per_frame:.0f}",
            f"{figures.bridge_rss_bytes / 2**20:.0f}",
            f"{figures.rss_per_call_bytes / 1024:.0f}", f"{figures.harness_cpu:.0f}", f"{figures.model_cpu:.0f}",
            _ms(figures.greeting_overhead_us, 0.5, 0.99), _ms(figures.greeting_less_reads_us, 0.5, 0.99),
            f"{_ms(figures.steady_turn_overhead_us, 0.5, 0.99)} ({_ms(figures.turn_overhead_us, 0.99)})",
            "-" if figures.pool_misses is None else figures.pool_misses)


def note(runs: list[LoadFigures], pinned: bool) -> str:
    cores = len(os.sched_getaffinity(0)) if not pinned else os.cpu_count()
    placement = "bridge pinned to one core, harness + model + stack on the other(s)" if pinned else "not pinned"
    lines = [
        f"{cores} cores, {placement}; the stand-ins for DynamoDB, Lambda and Twilio's REST API under SCHED_IDLE, so "
        "that they never delay the harness or the model; load average at each run's start: "
        + ", ".join(f"{run.calls} calls: {run.load_average}" for run in runs),
        "Relay latency: from the stamp written into each 20 ms caller frame (or 100 ms model delta) to its "
        "arrival at the other end, on the machine's monotonic clock; for audio sent while every call was up "
        "(from 1 s after the last greeting to the first hang-up, the CPU window too). Whole-call p99 counts all "
        "audio after each greeting, the ramp and the hang-ups included: calls being set up and torn down then load "
        "moto (DynamoDB) on the harness's core.",
        "Lost: frames the caller sent that the model never got; deltas the model sent that the caller never got.",
        "CPU (% of one core) and RSS are sampled from /proc in that window; KiB/call is the bridge's RSS "
        "growth over idle per call.",
        "CPU µs/frame: the bridge's CPU time over the whole run (set-up and hang-ups included) per frame or delta "
        "relayed; unlike CPU %, it is not lowered by other processes competing for the core.",
        "A harness or model near 100% means the bench, not the bridge, is the limit.",
        "Overhead: the latency the caller hears (after `start` for the greeting, after the end of its turn for a "
        "reply) less the model's own time to its first delta. Less DynamoDB reads: each greeting's overhead less "
        "the bridge's own timing of its agent and call reads (setup_reads_ms on the Call), which here wait on moto "
        "on the harness's core. Turn overhead is for turns ending in the steady window, and for all turns in "
        "brackets.",
        "Pool misses: calls that found the bridge's pool of pre-warmed model connections empty (a burst of "
        "arrivals faster than the refill) and connected at `start`, their greeting waiting for it.",
    ]
    lines += pooled(runs)
    lines += [f"  {error}" for run in runs for error in run.errors[:5]]
    return "\n".join(lines)


def pooled(runs: list[LoadFigures]) -> list[str]:
    """The overheads pooled over the runs of each call count that ran more than once.

    A run of 100 calls has 100 greetings, so its p99 is its second-worst: one stall on a noisy machine
    moves it by milliseconds. Pooled over runs, the tail is read from many more.
    """
    lines = []
    for calls in sorted({run.calls for run in runs}):
        same = [run for run in runs if run.calls == calls]
        if len(same) < 2:
            continue
        greetings = [overhead for run in same for overhead in run.greeting_overhead_us]
        turns = [overhead for run in same for overhead in run.steady_turn_overhead_us]
        lines.append(f"{calls} calls, {len(same)} runs pooled: greeting overhead ms p50/p95/p99 "
                     f"{_ms(greetings, 0.5, 0.95, 0.99)} ({len(greetings)} greetings), turn overhead ms "
                     f"p50/p95/p99 {_ms(turns, 0.5, 0.95, 0.99)} ({len(turns)} turns).")
    return lines


SOAK_COLUMNS = ("seconds in", "bridge RSS MiB")


def soak_rows(figures: SoakFigures) -> list[tuple[object, ...]]:
    return [(f"{at_s:.0f}", f"{rss / 2**20:.1f}") for at_s, rss in figures.rss]


def soak_note(figures: SoakFigures) -> str:
    baseline, growth = figures.rss_after_first_turnover(), figures.growth_bytes
    lines = [
        f"{figures.calls_served} calls served; lost c→m {figures.caller_frames_lost}, "
        f"m→c {figures.agent_deltas_lost}; relay p99 c→m {_ms(figures.caller_to_model_us, 0.99)} "
        f"ms, m→c {_ms(figures.model_to_caller_us, 0.99)} ms (whole calls).",
        f"RSS after the first callers were all replaced {baseline / 2**20:.1f} MiB, at the end "
        f"{figures.rss[-1][1] / 2**20:.1f} MiB: {growth / 2**20:+.1f} MiB "
        f"({growth / 1024 / max(1, figures.calls_served):+.1f} KiB per call served).",
    ]
    lines += [f"  {error}" for error in figures.errors[:5]]
    return "\n".join(lines)
