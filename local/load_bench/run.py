"""N concurrent calls through a real bridge process, with the scripted model in its load mode: relay figures and cost.

The local stack runs as in `make dev` (the bridge as deployed: `python -m bridge`, with its pool of
pre-warmed model connections), with the model in load mode. This process is the harness: it writes a
tool-less agent and one Call per caller to the stack's DynamoDB, pins the bridge to one core and
everything else to the others (when there are two), places the calls, ramping them up over
RAMP_CALLS_PER_S, and samples CPU and memory from /proc while every call is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.settings import BridgeSettings
from local.load_bench import processes
from local.load_bench.caller import CallResult, Dial, LoadCaller, SteadyWindow
from local.load_bench.fast_loop import run_fast
from local.scripted_model.load_mode import STATS_ENV
from local.stack import LocalStack, StackPorts

TENANT, AGENT = "tenant-load", "agent-load"
CALLER, BUSINESS = "+15557000000", "+15557000001"
RAMP_CALLS_PER_S = 30.0  # calls arrive over a few seconds, as they would on a real number
ARRIVAL_SEED = 7  # the same arrival times on every run, so that runs compare
SETTLE_S = 1.0  # after the last greeting, before the steady window opens: the last set-up's tail is not relay
RESULTS_TIMEOUT_S = 20.0  # for the model's per-session figures and the finalised Calls after a run
WARM_UP_S = 1.0  # one call first, so the bridge's first-call costs (AWS clients, caches) are not counted
SOAK_RAMP_S = 2.0  # the soak's first callers arrive over this, then each line is busy without a gap
SOAK_SAMPLE_S = 15.0
BARE_RELAY_MODULE = "local.load_bench.bare_relay"


@dataclass(kw_only=True)
class RelayCounts:
    """What went each way, as the callers and the model saw it: frames, deltas and latencies in microseconds."""

    caller_to_model_us: list[int] = field(default_factory=list)
    model_to_caller_us: list[int] = field(default_factory=list)
    frames_sent: int = 0
    frames_received: int = 0
    deltas_sent: int = 0
    deltas_received: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def caller_frames_lost(self) -> int:
        return self.frames_sent - self.frames_received

    @property
    def agent_deltas_lost(self) -> int:
        return self.deltas_sent - self.deltas_received

    def count_callers(self, results: list[CallResult]) -> None:
        for result in results:
            self.frames_sent += result.frames_sent
            self.deltas_received += result.deltas_received
            self.model_to_caller_us += result.model_to_caller_us
            if result.error:
                self.errors.append(f"call {result.call}: {result.error}")

    def count_model_sessions(self, sessions: list[dict[str, Any]], calls: int) -> None:
        for session in sessions:
            self.frames_received += session["frames"]
            self.deltas_sent += session["deltas_sent"]
            self.caller_to_model_us += session["latency_us"]
        if len(sessions) < calls:
            self.errors.append(f"{calls - len(sessions)} calls never reached the model: their frames count as lost")


@dataclass
class LoadFigures(RelayCounts):
    """One run's figures. Latencies in microseconds; CPU in percent of one core."""

    calls: int
    seconds: float
    # The relay latencies again, for audio sent while every call was up: no set-up or hang-up around it
    steady_caller_to_model_us: list[int] = field(default_factory=list)
    steady_model_to_caller_us: list[int] = field(default_factory=list)
    greeting_overhead_us: list[int] = field(default_factory=list)
    # Each greeting's overhead less the bridge's DynamoDB reads at `start` (the Call's setup_reads_ms)
    greeting_less_reads_us: list[int] = field(default_factory=list)
    turn_overhead_us: list[int] = field(default_factory=list)
    steady_turn_overhead_us: list[int] = field(default_factory=list)
    bridge_cpu: float = 0.0
    bridge_cpu_s: float = 0.0  # the bridge's CPU time over the whole run, set-up and hang-ups included
    harness_cpu: float = 0.0
    model_cpu: float = 0.0
    bridge_rss_bytes: int = 0
    bridge_rss_idle_bytes: int = 0
    load_average: str = ""
    pool_misses: int | None = None  # calls that found the bridge's pool of model connections empty (None: no pool)

    def count_callers(self, results: list[CallResult]) -> None:
        super().count_callers(results)
        for result in results:
            self.steady_model_to_caller_us += result.steady_model_to_caller_us
            self.turn_overhead_us += result.turn_overhead_us
            self.steady_turn_overhead_us += result.steady_turn_overhead_us
            if result.greeting_overhead_us is not None:
                self.greeting_overhead_us.append(result.greeting_overhead_us)

    def count_setup_reads(self, results: list[CallResult], setup_reads_ms: dict[str, float]) -> None:
        for result in results:
            reads_ms = setup_reads_ms.get(result.call_sid)
            if result.greeting_overhead_us is not None and reads_ms is not None:
                self.greeting_less_reads_us.append(result.greeting_overhead_us - int(reads_ms * 1000))

    def count_model_sessions(self, sessions: list[dict[str, Any]], calls: int) -> None:
        super().count_model_sessions(sessions, calls)
        for session in sessions:
            self.steady_caller_to_model_us += session["steady_latency_us"]

    @property
    def bridge_cpu_us_per_frame(self) -> float:
        """Bridge CPU per frame relayed (either way): unlike CPU %, it holds on a busy machine."""
        return 1e6 * self.bridge_cpu_s / max(1, self.frames_received + self.deltas_received)

    @property
    def rss_per_call_bytes(self) -> int:
        return (self.bridge_rss_bytes - self.bridge_rss_idle_bytes) // self.calls


@dataclass
class SoakFigures(RelayCounts):
    """A soak: `calls` callers kept up for `minutes`, each replaced as it hangs up, the bridge's RSS sampled."""

    calls: int
    minutes: float
    call_seconds: float
    calls_served: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the soak, bridge RSS bytes)

    def rss_after_first_turnover(self) -> int:
        """The baseline: once every first caller has been replaced, so one-off allocations (clients, caches, the
        first calls' buffers) are not read as growth."""
        return next((rss for at_s, rss in self.rss if at_s >= self.call_seconds + SOAK_RAMP_S), self.rss[-1][1])

    @property
    def growth_bytes(self) -> int:
        return self.rss[-1][1] - self.rss_after_first_turnover()


class LoadBench:
    """The stack in load mode, set up once for several runs: `with LoadBench() as bench: bench.run(100, 20)`."""

    def __init__(self, log_dir: Path | None = None, bare: bool = False) -> None:
        """`bare`: the bare relay (local/load_bench/bare_relay.py) in the bridge's place, for the floor."""
        self._bare = bare
        self._scratch = tempfile.TemporaryDirectory(prefix="voiceline-load-")
        self._stats = Path(self._scratch.name) / "model-sessions.jsonl"
        # The bridge keeps its deployed pool of pre-warmed model connections (the local stack's default is none).
        self._stack = LocalStack(ports=StackPorts.free(), log_dir=log_dir or Path(self._scratch.name),
                                 extra_env={STATS_ENV: str(self._stats),
                                            "OPENAI_POOL_SIZE": str(BridgeSettings.openai_pool_size)},
                                 bridge_module=self._relay_module)
        self._next_call = 0
        self._bridge_pid = self._model_pid = 0
        self._bridge_idle_rss = 0
        self._own_cores: set[int] | None = None
        self._outer_env: dict[str, str] = {}

    @property
    def _relay_module(self) -> str:
        return BARE_RELAY_MODULE if self._bare else "bridge"

    def __enter__(self) -> LoadBench:
        self._outer_env = dict(os.environ)
        self._stack.start()
        try:
            self._stats.touch()
            os.environ.update(self._stack.environment())  # the seeding below writes to the stack's DynamoDB
            _reconnect_models()
            _seed_agent()
            stack_children = processes.children(os.getpid())
            self._bridge_pid = next(pid for pid, command in stack_children.items()
                                    if f"-m {self._relay_module} " in command)
            self._model_pid = next(pid for pid, command in stack_children.items() if "local.scripted_model" in command)
            self._pin(stack_children)
            self._let_background_yield(stack_children)
            self.run(1, WARM_UP_S)
            self._bridge_idle_rss = processes.sample(self._bridge_pid).rss_bytes
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._own_cores is not None:
            os.sched_setaffinity(0, self._own_cores)
        self._stack.stop()
        self._scratch.cleanup()
        os.environ.clear()  # the stack's endpoints and LOAD_MODEL_STATS must not outlive it (tests run on)
        os.environ.update(self._outer_env)
        _reconnect_models()

    @property
    def pinned(self) -> bool:
        return self._own_cores is not None

    def run(self, calls: int, seconds: float) -> LoadFigures:
        """`calls` callers at once, each talking for `seconds`; returns when every one has hung up."""
        first = self._next_call
        self._next_call += calls
        dials = _dials(self._stack.bridge_url.replace("http://", "ws://") + "/media-stream",
                       os.environ["TWILIO_AUTH_TOKEN"], os.environ["STREAM_TOKEN_KEY"].encode(), first, calls)
        figures = LoadFigures(calls, seconds, bridge_rss_idle_bytes=self._bridge_idle_rss,
                              load_average=processes.load_average())
        missed_before = 0 if self._bare else self._pool_missed()
        results = run_fast(self._place(dials, seconds, figures))
        figures.count_callers(results)
        figures.count_model_sessions(self._model_sessions(range(first, first + calls)), calls)
        if not self._bare:  # the bare relay reads and finalises no Call, and keeps no pool
            figures.count_setup_reads(results, _setup_reads_ms([result.call_sid for result in results]))
            figures.pool_misses = self._pool_missed() - missed_before
        return figures

    def _pool_missed(self) -> int:
        """The bridge's count, since it started, of calls that found no pre-warmed model connection."""
        with urllib.request.urlopen(f"{self._stack.bridge_url}/health", timeout=5) as response:
            return int(json.load(response)["realtime_pool"]["missed"])

    async def _place(self, dials: list[tuple[int, Dial]], seconds: float, figures: LoadFigures) -> list[CallResult]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = processes.sample(self._bridge_pid)
        steady = SteadyWindow(len(dials), SETTLE_S)

        async def call_later(number: int, dial: Dial, delay_s: float) -> CallResult:
            await asyncio.sleep(delay_s)
            return await LoadCaller(number, dial, seconds, steady).run()

        callers = [asyncio.create_task(call_later(number, dial, at_s))
                   for (number, dial), at_s in zip(dials, arrivals(len(dials), RAMP_CALLS_PER_S), strict=True)]
        # CPU and memory are sampled in the steady window: from its opening to just before the first call's end.
        first_end = started + seconds - 0.25
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(steady.opened.wait(), max(0.0, first_end - loop.time()))
        await asyncio.sleep(SETTLE_S)
        before = [processes.sample(pid) for pid in (self._bridge_pid, os.getpid(), self._model_pid)]
        if first_end - loop.time() < 1.0:
            figures.errors.append("the calls were never all up at once for a second: CPU and relay figures are "
                                  "not steady state; give the calls more seconds")
        await asyncio.sleep(max(0.05, first_end - loop.time()))
        after = [processes.sample(pid) for pid in (self._bridge_pid, os.getpid(), self._model_pid)]
        figures.bridge_cpu, figures.harness_cpu, figures.model_cpu = (
            processes.cpu_percent(b, a) for b, a in zip(before, after, strict=True))
        figures.bridge_rss_bytes = after[0].rss_bytes
        results = list(await asyncio.gather(*callers))
        figures.bridge_cpu_s = processes.sample(self._bridge_pid).cpu_s - first.cpu_s
        return results

    def soak(self, calls: int, minutes: float, call_seconds: float) -> SoakFigures:
        """Keep `calls` callers up for `minutes`, each talking `call_seconds` and replaced at once by a new call;
        bounded: no call starts that would end after the soak."""
        slots = int(minutes * 60 // call_seconds)
        first = self._next_call
        self._next_call += calls * slots
        figures = SoakFigures(calls, minutes, call_seconds)
        results = run_fast(self._soak(first, calls, slots, figures))
        figures.calls_served = len(results)
        figures.count_callers(results)
        figures.count_model_sessions(self._model_sessions(range(first, first + len(results))), len(results))
        return figures

    async def _soak(self, first: int, calls: int, slots: int, figures: SoakFigures) -> list[CallResult]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        steady = SteadyWindow(calls, 0.0)  # unused by the soak's figures, which are whole-call
        url = self._stack.bridge_url.replace("http://", "ws://") + "/media-stream"
        auth_token, token_key = os.environ["TWILIO_AUTH_TOKEN"], os.environ["STREAM_TOKEN_KEY"].encode()

        first_calls = arrivals(calls, calls / SOAK_RAMP_S)

        async def one_line(line: int) -> list[CallResult]:
            """One caller's line: a call, and when it hangs up the next, `slots` times; each is dialled (Call
            record, stream token) just before it starts, as the webhook would, so no token expires waiting."""
            await asyncio.sleep(first_calls[line])
            results = []
            for slot in range(slots):
                [(number, dial)] = await asyncio.to_thread(_dials, url, auth_token, token_key,
                                                           first + line * slots + slot, 1)
                results.append(await LoadCaller(number, dial, figures.call_seconds, steady).run())
            return results

        async def sample_rss() -> None:
            while True:
                figures.rss.append((loop.time() - started, processes.sample(self._bridge_pid).rss_bytes))
                await asyncio.sleep(SOAK_SAMPLE_S)

        sampler = asyncio.create_task(sample_rss())
        try:
            lines = await asyncio.gather(*(one_line(line) for line in range(calls)))
        finally:
            sampler.cancel()
        figures.rss.append((loop.time() - started, processes.sample(self._bridge_pid).rss_bytes))
        return [result for line in lines for result in line]

    def _model_sessions(self, calls: range) -> list[dict[str, Any]]:
        """The model's figures for these calls; each session writes its line when the bridge closes it."""
        deadline = time.monotonic() + RESULTS_TIMEOUT_S
        while True:
            complete = self._stats.read_text().split("\n")[:-1]  # a long line may be half written
            sessions = [session for session in map(json.loads, complete) if session["call"] in calls]
            if len(sessions) >= len(calls) or time.monotonic() > deadline:
                return sessions
            time.sleep(0.1)  # the bridge closes its model sockets right after the calls end

    def _pin(self, stack_children: dict[int, str]) -> None:
        split = processes.split_cores()
        if split is None:
            return
        bridge_cores, other_cores = split
        self._own_cores = os.sched_getaffinity(0)
        for pid in stack_children:
            processes.pin(pid, bridge_cores if pid == self._bridge_pid else other_cores)
        os.sched_setaffinity(0, other_cores)

    def _let_background_yield(self, stack_children: dict[int, str]) -> None:
        """The stand-ins for DynamoDB, Lambda and Twilio's REST API run only when the harness and the model wait.

        Those two stamp and read the audio, so their delays count as the bridge's; in production the
        services the stand-ins play run on other machines. Under SCHED_IDLE, moto's work at each call's
        set-up yields the core they share at once; niced (10) it still held it for part of a time slice,
        and the greeting's p95 was half as long again.
        """
        for pid in stack_children:
            if pid not in (self._bridge_pid, self._model_pid):
                processes.run_when_idle(pid)


def _reconnect_models() -> None:
    """The models' next request opens a client for the DynamoDB endpoint the environment now names."""
    from voiceline.models import ALL_MODELS

    for model in ALL_MODELS:
        model._connection = None


def _setup_reads_ms(call_sids: list[str]) -> dict[str, float]:
    """What the bridge wrote on each finalised Call: how long its agent and call reads took at `start`."""
    from voiceline.models import Call

    deadline = time.monotonic() + RESULTS_TIMEOUT_S
    while True:
        reads = {call.call_sid: call.setup_reads_ms for call in Call.batch_get(call_sids)
                 if call.setup_reads_ms is not None}
        if len(reads) == len(call_sids) or time.monotonic() > deadline:
            return reads
        time.sleep(0.2)  # the bridge finalises each Call just after its stream closes


def arrivals(calls: int, per_s: float) -> list[float]:
    """Seconds from the first call to each call's arrival: a Poisson process at `per_s` (random gaps, fixed seed).

    Calls placed at an exact period keep that period's phase: at 30 a second, every caller's 20 ms frames
    and the model's 100 ms deltas fell on three instants, so each was a burst of a third of the calls. Real
    callers arrive at random, their frames spread over the 20 ms.
    """
    rng = random.Random(ARRIVAL_SEED)
    return list(itertools.accumulate((rng.expovariate(per_s) for _ in range(calls - 1)), initial=0.0))


def _seed_agent() -> None:
    from voiceline.models import Agent

    Agent(AGENT, tenant_id=TENANT, name="Load", business_name="Load Bench", instructions="Be brief.",
          greeting="Hello.", tools=[], max_duration_s=3600, silence_timeout_s=120).save()


def _dials(url: str, auth_token: str, token_key: bytes, first: int, count: int) -> list[tuple[int, Dial]]:
    """One Call record and one stream token per caller, as the voice webhook would have made them."""
    from datetime import UTC, datetime

    from voiceline import agents, stream_token
    from voiceline.models import Agent, Call

    facts = stream_token.CallFacts(agents.fingerprint(Agent.get(AGENT, consistent_read=True)), CALLER, BUSINESS,
                                   "inbound", has_variables=False)
    dials = []
    with Call.batch_write() as batch:
        for number in range(first, first + count):
            call_sid = "CA" + secrets.token_hex(16)
            batch.save(Call(call_sid, tenant_id=TENANT, agent_id=AGENT, from_number=CALLER, to_number=BUSINESS,
                            direction="inbound", started_at=datetime.now(UTC)))
            parameters = stream_token.stream_parameters(token_key, call_sid, AGENT, TENANT, facts)
            dials.append((number, Dial(url, auth_token, call_sid, parameters)))
    return dials
