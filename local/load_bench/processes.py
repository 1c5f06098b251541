"""The processes under load, read from /proc (Linux): CPU time, resident memory, and which cores they may use."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float
    rss_bytes: int


def sample(pid: int) -> Sample:
    """CPU seconds (user + system) and resident bytes of one process, now."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return Sample(time.monotonic(), (utime + stime) / _TICKS, rss_pages * _PAGE)


def cpu_percent(before: Sample, after: Sample) -> float:
    """Share of one core used between two samples."""
    return 100 * (after.cpu_s - before.cpu_s) / max(after.wall_s - before.wall_s, 1e-9)


def children(parent: int) -> dict[int, str]:
    """The direct children of a process, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue  # it ended while we looked
    return found


def pin(pid: int, cores: set[int]) -> None:
    """Keep every thread of a process on these cores."""
    for thread in _threads(pid):
        with contextlib.suppress(ProcessLookupError):  # the thread ended while we looked
            os.sched_setaffinity(thread, cores)


def run_when_idle(pid: int) -> None:
    """Schedule every thread of a process under SCHED_IDLE: it runs only on a core no other task wants."""
    for thread in _threads(pid):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))


def _threads(pid: int) -> list[int]:
    """Affinity and policy are per thread on Linux; threads started later inherit their creator's."""
    return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for the figures' context."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def split_cores() -> tuple[set[int], set[int]] | None:
    """One core for the bridge, the rest for everyone else; None on a machine with a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return {cores[0]}, set(cores[1:])
