"""`make bench`: how fast Voiceline's pieces are, measured rather than asserted in unit tests.

Each section measures one thing and prints one table; main() runs them in order.

- Cold imports: a fresh `python` per sample imports a tool Lambda's (or the admin API's) handler module
  with only what Lambda puts on sys.path (the function's folder, the layer, the installed packages), and reports
  the import alone, without interpreter start-up. Bytecode is cached (a warm-up run writes it to a
  private prefix, never into the source tree), as for a layer that ships .pyc files; a layer without
  them also pays for compiling its own source on every cold start.
- Tool round trips: the bridge's own ToolInvoker calls each business tool through the local
  stack's Lambda Invoke API (boto3 → gateway → handler → moto), with the arguments of the tool's
  first sample in events/. The first call of each tool is its cold start; the rest are warm.
- Admin API: requests to the local stack's gateway (→ Mangum → FastAPI → moto) for call history and a
  call's detail, with a tenant's key, over a seeded history. The first request is the cold start.
- Greeting latency: sequential calls through the in-process bridge and the scripted model, with no pre-warmed
  OpenAI connection and with a pool of two, on loopback and with a simulated connect time (local/bench_greeting.py).
- Load: N concurrent calls through a real bridge process and the scripted model's load mode
  (local/load_bench/): relay latency each way, frames lost, the bridge's CPU and memory.
- Analytics: 500 synthetic Calls changed to ended on the local stack; how long until the stream poller and the
  rollup Lambda have counted them all (records per second), then /api/analytics over 30 days by day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from local.environment import DEFAULTS, applied
from local.gateway import DEFAULT_TEMPLATE, load_template
from local.lambda_runtime import LambdaFunction, lambda_functions
from local.stack import ROOT, LocalStack, StackPorts
from voiceline.stats import percentile

DEFAULT_SAMPLES = 7
SAMPLE_TIMEOUT_S = 60  # one import; anything slower is broken, not slow

# Run in a fresh interpreter: put the function folder and the layer first, as Lambda does
# (/var/task, then /opt/python), then the installed packages; import the handler; print the milliseconds.
_IMPORT_HANDLER = """
import importlib, sys, time
code_dir, handler, layers, packages = sys.argv[1:5]
sys.path[:0] = [code_dir, *filter(None, layers.split("|"))]
sys.path.extend(packages.split("|"))
module_name, _, attribute = handler.rpartition(".")
started = time.perf_counter()
getattr(importlib.import_module(module_name), attribute)
print((time.perf_counter() - started) * 1000)
"""


@dataclass(frozen=True)
class Section:
    """One table of results."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    note: str = ""


Measure = Callable[[argparse.Namespace], Section]


def tool_functions() -> list[LambdaFunction]:
    """The template's functions behind business tools, in the registry's order."""
    from voiceline.tools import BRIDGE, REGISTRY

    functions = {function.code_dir.name: function
                 for function in lambda_functions(load_template(DEFAULT_TEMPLATE), DEFAULT_TEMPLATE.parent)}
    return [functions[name] for name, tool in REGISTRY.items() if tool.runs_on != BRIDGE and name in functions]


def admin_function() -> LambdaFunction:
    [function] = [function for function in lambda_functions(load_template(DEFAULT_TEMPLATE), DEFAULT_TEMPLATE.parent)
                  if function.code_dir.name == "admin"]
    return function


def layer_dirs() -> list[str]:
    template = load_template(DEFAULT_TEMPLATE)
    return [str(DEFAULT_TEMPLATE.parent / resource["Properties"]["ContentUri"])
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Serverless::LayerVersion"]


def import_ms(function: LambdaFunction, pycache: str) -> float:
    """One cold import of the function's handler module in a fresh interpreter."""
    packages = "|".join(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))
    env = {**DEFAULTS, "PATH": os.environ.get("PATH", ""), "PYTHONPYCACHEPREFIX": pycache,
           "AWS_LAMBDA_FUNCTION_NAME": function.deployed_name,
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb)}
    # -I -S: no user site, no .pth files, so the editable voiceline install cannot stand in for the layer.
    result = subprocess.run([sys.executable, "-I", "-S", "-c", _IMPORT_HANDLER, str(function.code_dir),
                             function.handler, "|".join(layer_dirs()), packages],
                            env=env, cwd=function.code_dir, capture_output=True, text=True, timeout=SAMPLE_TIMEOUT_S,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{function.deployed_name}: {function.handler} does not import:\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1])


def cold_imports(args: argparse.Namespace) -> Section:
    functions = [*tool_functions(), admin_function()]
    samples: dict[str, list[float]] = {function.deployed_name: [] for function in functions}
    with tempfile.TemporaryDirectory(prefix="voiceline-bench-pycache-") as pycache:
        for function in functions:
            import_ms(function, pycache)  # warm-up: writes the bytecode, warms the disk cache
        # Round-robin, so a busy moment of the machine spreads over every function instead of one.
        for _ in range(args.samples):
            for function in functions:
                samples[function.deployed_name].append(import_ms(function, pycache))
    rows: list[tuple[object, ...]] = [(name, f"{statistics.median(times):.0f}", f"{max(times):.0f}")
                                      for name, times in samples.items()]
    return Section(f"Cold import of each tool Lambda's and the admin API's handler module ({args.samples} samples "
                   "each)",
                   ("function", "median ms", "max ms"), rows,
                   note="Import only, bytecode cached; Lambda's init also starts the runtime.")


def tool_round_trips(args: argparse.Namespace) -> Section:
    # boto3 reads AWS_ENDPOINT_URL_LAMBDA when the invoker starts
    with LocalStack(ports=StackPorts.free()) as stack, applied(stack.environment()):
        durations = asyncio.run(_invoke_each_tool(args.samples * 3))
    rows: list[tuple[object, ...]] = []
    for name, (cold_ms, warm, outcomes) in durations.items():
        rows.append((name, f"{cold_ms:.0f}", f"{percentile(warm, 0.5):.0f}", f"{percentile(warm, 0.95):.0f}",
                     ", ".join(sorted(outcomes))))
    everything = [ms for _, warm, _ in durations.values() for ms in warm]
    rows.append(("all warm calls", "", f"{percentile(everything, 0.5):.0f}", f"{percentile(everything, 0.95):.0f}",
                 ""))
    return Section(f"Tool round trip as the bridge sees it (1 cold + {args.samples * 3} warm calls each)",
                   ("tool", "cold ms", "warm p50 ms", "warm p95 ms", "outcomes"), rows,
                   note="Local stack: the handlers run in the gateway's process against moto. 'Cold' is the first "
                        "call of a function;\nafter the first tool the shared layer is already imported in that "
                        "process, so only the handler module loads.\nA repeated booking of one slot answers "
                        "tool_error (slot_taken), which is a full round trip too.")


async def _invoke_each_tool(warm_calls: int) -> dict[str, tuple[float, list[float], set[str]]]:
    from bridge.tool_invoker import ToolInvoker
    from voiceline.tool_contract import CallContext
    from voiceline.tools import REGISTRY

    invoker = ToolInvoker()
    durations: dict[str, tuple[float, list[float], set[str]]] = {}
    try:
        for sample in sorted((ROOT / "events").glob("*/*.json")):
            event = json.loads(sample.read_text())
            if event.get("tool") not in REGISTRY or event["tool"] in durations:
                continue
            call = event["call"]
            context = CallContext(call["call_sid"], call["agent_id"], call["tenant_id"], call["from"], call["to"])
            results = [await invoker.invoke(REGISTRY[event["tool"]], event["arguments"], context,
                                            f"{event['invocation_id']}-{number}")
                       for number in range(warm_calls + 1)]
            if results[0].outcome not in ("ok", "tool_error"):
                raise RuntimeError(f"{event['tool']} ({sample.name}) failed: {results[0].reply}")
            durations[event["tool"]] = (results[0].duration_ms, [result.duration_ms for result in results[1:]],
                                        {result.outcome for result in results})
    finally:
        invoker.close()
    return durations


ADMIN_TENANT = "tenant-bench"
ADMIN_CALLS = 500
ADMIN_EVENTS_PER_CALL = 40


def admin_requests(args: argparse.Namespace) -> Section:
    # the seeding below writes to the stack's DynamoDB
    with LocalStack(ports=StackPorts.free()) as stack, applied(stack.environment()):
        key, agent_id, call_sid = _seed_admin_history()
        with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"},
                          timeout=30) as client:
            cold_ms = _timed(client, "/api/calls", {"limit": "20"})
            cursor = client.get("/api/calls", params={"limit": "20"}).json()["next_cursor"]
            requests = [("list calls, 20 a page", "/api/calls", {"limit": "20"}),
                        ("list one agent's calls, 20 a page", "/api/calls", {"limit": "20", "agent": agent_id}),
                        ("next page (cursor)", "/api/calls", {"limit": "20", "cursor": cursor}),
                        (f"one call and its {ADMIN_EVENTS_PER_CALL} events", f"/api/calls/{call_sid}", {}),
                        ("list agents", "/api/agents", {})]
            rows: list[tuple[object, ...]] = []
            for label, path, params in requests:
                times = [_timed(client, path, params) for _ in range(args.samples * 10)]
                rows.append((label, f"{percentile(times, 0.5):.1f}", f"{percentile(times, 0.95):.1f}"))
    return Section(f"Admin API on the local stack ({ADMIN_CALLS} calls seeded; {args.samples * 10} requests each)",
                   ("request", "p50 ms", "p95 ms"), rows,
                   note=f"HTTP through the gateway to the admin Lambda (Mangum, FastAPI) and moto. The first request "
                        f"(a cold start) took {cold_ms:.0f} ms.")


def _seed_admin_history() -> tuple[str, str, str]:
    """A tenant with a key, an agent and its call history, written straight to the stack's tables."""
    from datetime import UTC, datetime, timedelta

    from voiceline import agents, api_keys, calls
    from voiceline.models import ALL_MODELS, Call

    for model in ALL_MODELS:
        model._connection = None  # the endpoint is the stack's, set just now
    key = api_keys.issue_key(ADMIN_TENANT, "bench").key
    agent = agents.create_agent(ADMIN_TENANT, {"name": "Bench", "instructions": "Help {caller_number}.",
                                               "greeting": "Hello."})
    first = datetime(2030, 1, 1, tzinfo=UTC)
    with Call.batch_write() as batch:
        for number in range(ADMIN_CALLS):
            batch.save(Call(f"CA{number:032d}", tenant_id=ADMIN_TENANT, agent_id=agent.agent_id,
                            from_number="+15551234567", to_number="+15550100", status="ended",
                            started_at=first + timedelta(minutes=number), end_reason="caller_hung_up",
                            duration_s=60.0))
    call_sid = f"CA{ADMIN_CALLS - 1:032d}"
    calls.append_events(call_sid, 0, [calls.NewEvent("transcript", 500 * n, role=("agent", "caller")[n % 2],
                                                     text="A line of the conversation.")
                                      for n in range(ADMIN_EVENTS_PER_CALL)])
    return key, agent.agent_id, call_sid


def _timed(client: httpx.Client, path: str, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = client.get(path, params=params)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text}")
    return elapsed_ms


def greeting_latency(args: argparse.Namespace) -> Section:
    from local.bench_greeting import CALLS, SIMULATED_CONNECT_S, greeting_latencies

    rows: list[tuple[object, ...]] = [
        (f"{pool_size}", "loopback" if not delay else f"+{delay * 1000:.0f} ms", f"{percentile(times, 0.5):.1f}",
         f"{percentile(times, 0.95):.1f}")
        for (pool_size, delay), times in greeting_latencies().items()]
    return Section(f"Greeting latency, Twilio start -> first agent audio ({CALLS} sequential calls each)",
                   ("OpenAI pool size", "connect", "p50 ms", "p95 ms"), rows,
                   note=f"In-process bridge, scripted model, moto in-process (local/bench_greeting.py). '+"
                        f"{SIMULATED_CONNECT_S * 1000:.0f} ms' holds each handshake that long,\nstanding in for "
                        "the network and TLS to OpenAI; with a pool, a call's session.update goes out at once.")


def load_calls(args: argparse.Namespace) -> Section:
    return _load(args, bare=False)


def load_floor(args: argparse.Namespace) -> Section:
    """The same load through a relay that does nothing but relay: what the machine and the libraries cost."""
    return _load(args, bare=True)


def _load(args: argparse.Namespace, bare: bool) -> Section:
    from local.load_bench import report
    from local.load_bench.run import LoadBench

    counts = [int(count) for count in str(args.load_calls).split(",") if count.strip()]
    with LoadBench(bare=bare) as bench:
        runs = [bench.run(count, args.load_seconds) for count in counts]
        pinned = bench.pinned
    through = "a bare relay in the bridge's place (local/load_bench/bare_relay.py)" if bare else "the bridge"
    return Section(f"Load: concurrent calls through {through}, {args.load_seconds:.0f} s of conversation each",
                   report.COLUMNS, [report.row(run) for run in runs], note=report.note(runs, pinned))


def soak(calls: int, minutes: float, call_seconds: float) -> Section:
    """Memory over a long run: is anything left behind per call?"""
    from local.load_bench import report
    from local.load_bench.run import LoadBench

    with LoadBench() as bench:
        figures = bench.soak(calls, minutes, call_seconds)
    return Section(f"Soak: {calls} calls kept up for {minutes:g} min, each {call_seconds:.0f} s then replaced",
                   report.SOAK_COLUMNS, report.soak_rows(figures), note=report.soak_note(figures))


ROLLUP_CALLS = 500
ROLLUP_DAYS = 30
ROLLUP_TIMEOUT_S = 600


def analytics(args: argparse.Namespace) -> Section:
    """Rollup throughput (Calls stream → poller → AnalyticsFunction) and /api/analytics over 30 days by day."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime, timedelta

    with LocalStack(ports=StackPorts.free()) as stack, applied(stack.environment()):  # writes go to its DynamoDB
        from voiceline import api_keys
        from voiceline.models import ALL_MODELS, Call

        for model in ALL_MODELS:
            model._connection = None
        key = api_keys.issue_key("tenant-bench-analytics", "bench").key
        first = datetime(2030, 1, 1, tzinfo=UTC)
        sids = [f"CA{number:032d}" for number in range(ROLLUP_CALLS)]
        with Call.batch_write() as batch:
            for number, sid in enumerate(sids):
                batch.save(Call(sid, tenant_id="tenant-bench-analytics", agent_id="agent-bench",
                                from_number="+15551234567", to_number="+15550100", status="in_progress",
                                started_at=first + timedelta(days=ROLLUP_DAYS) * number / ROLLUP_CALLS))

        def finish(sid: str) -> None:  # what finalise_call changes, with typical figures
            Call(sid).update(actions=[
                Call.status.set("ended"), Call.end_reason.set("agent_hung_up"), Call.duration_s.set(95.5),
                Call.interruptions.set(1), Call.turn_latencies_ms.set([420.0, 610.0, 880.0, 1250.0]),
                Call.greeting_latency_ms.set(700.0), Call.cost.set({"total": 0.0871}),
                Call.tools.set({"get_pricing": {"calls": 1, "declined": 0, "failed": 0},
                                "book_appointment": {"calls": 1, "declined": 0, "failed": 0}})])

        window = {"from": first.isoformat(), "to": (first + timedelta(days=ROLLUP_DAYS)).isoformat()}
        with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"},
                          timeout=30) as client:
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(finish, sids))
            written_s = time.perf_counter() - started
            deadline = started + ROLLUP_TIMEOUT_S
            while _analytics_calls(client, window) < ROLLUP_CALLS:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"rollups incomplete after {ROLLUP_TIMEOUT_S} s; see {stack.log_dir}")
                time.sleep(0.2)
            rolled_s = time.perf_counter() - started
            times = [_timed(client, "/api/analytics", window) for _ in range(args.samples * 10)]
    rows: list[tuple[object, ...]] = [
        (f"rollups: {ROLLUP_CALLS} calls ended → counted", f"{rolled_s:.1f} s", f"{ROLLUP_CALLS / rolled_s:.0f}/s"),
        (f"GET /api/analytics, {ROLLUP_DAYS} days by day, p50", f"{percentile(times, 0.5):.1f} ms",
         f"p95 {percentile(times, 0.95):.1f} ms")]
    return Section("Analytics on the local stack", ("measure", "time", "rate / p95"), rows,
                   note=f"The {ROLLUP_CALLS} UpdateItems took {written_s:.1f} s of that (8 writers); the stream poller "
                        "reads moto's stream and invokes the function through the gateway, batches of up to 100. "
                        "The post-call summary function reads the same stream and shares the CPU.")


def _analytics_calls(client: httpx.Client, window: dict[str, str]) -> int:
    response = client.get("/api/analytics", params=window)
    if response.status_code != 200:
        raise RuntimeError(f"GET /api/analytics answered {response.status_code}: {response.text}")
    return int(response.json()["totals"]["calls"])


SECTIONS: list[Measure] = [cold_imports, tool_round_trips, admin_requests, greeting_latency, load_calls,
                           load_floor, analytics]


def render(section: Section) -> str:
    cells = [section.columns, *[tuple(str(value) for value in row) for row in section.rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(section.columns))]

    def line(row: Sequence[str]) -> str:
        # The first column is a name (left); the rest are figures (right).
        return "  ".join(cell.ljust(width) if index == 0 else cell.rjust(width)
                         for index, (cell, width) in enumerate(zip(row, widths, strict=True)))

    lines = [section.title, line(section.columns), line(["-" * width for width in widths])]
    lines += [line(row) for row in cells[1:]]
    if section.note:
        lines.append(section.note)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="measurements per function")
    parser.add_argument("--load-calls", default="50,100,100,100,150",
                        help="concurrent calls, one load run per count; a count named again runs again, pooled")
    parser.add_argument("--load-seconds", type=float, default=20.0, help="how long each load call talks")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    started = time.perf_counter()
    for measure in SECTIONS:
        print(render(measure(args)), end="\n\n", flush=True)
    print(f"bench took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
