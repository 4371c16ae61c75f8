"""Where a Spark driver's CPU goes, by the kind of thread that spent it.

Java Flight Recorder samples only threads running Java code; the JIT compilers and the
garbage collector are native threads it does not see.  Linux counts every thread's CPU in
/proc/<pid>/task/<tid>/stat, under the thread's name (Java names its own threads), so two
readings of that, the Python driver and the process tree's total give the whole split.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

# A thread's name as Linux shows it (15 characters at most) -> what it does.
KINDS = (
    (re.compile(r"^(C1|C2) CompilerThre|^Sweeper thread"), "JIT compilers"),
    (re.compile(r"^(GC Thread|G1 |VM Thread|VM Periodic)"), "garbage collector and VM"),
    (re.compile(r"^Executor task"), "Spark tasks"),
    (re.compile(r"^stream executi"), "query threads (planning, commits, sink)"),
    (re.compile(r"^spark-listener"), "listener bus (UI, progress events)"),
    (re.compile(r"^process reaper"), "waiting for forked processes"),
)
OTHER = "other JVM threads"


def thread_kind(name: str) -> str:
    for pattern, kind in KINDS:
        if pattern.search(name):
            return kind
    return OTHER


def _ticks(stat: str) -> tuple[str, int]:
    """The name and user + system clock ticks of one /proc/<pid>/task/<tid>/stat line."""
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return name, int(fields[11]) + int(fields[12])


def thread_seconds(pid: int, proc: Path = Path("/proc")) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of each live thread of a process: {tid: (name, seconds)}."""
    hertz = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in (proc / str(pid) / "task").iterdir():
        try:
            name, ticks = _ticks((task / "stat").read_text())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        found[int(task.name)] = (name, ticks / hertz)
    return found


def by_kind(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> Counter[str]:
    """CPU seconds per kind of thread between two readings (threads that ended in between
    are missing: their time shows in the process total, not here)."""
    spent: Counter[str] = Counter()
    for tid, (name, seconds) in after.items():
        spent[thread_kind(name)] += seconds - before.get(tid, (name, 0.0))[1]
    return spent


def python_seconds(pid: int) -> float:
    """CPU seconds so far of the Python processes under a JVM (PySpark's driver)."""
    total = 0.0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.name().startswith("python"):
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass(frozen=True)
class Reading:
    """A JVM's threads, its Python processes and its whole process tree, at one moment."""

    threads: dict[int, tuple[str, float]]
    python: float
    total: float  # CPU seconds of the whole tree, ended children included

    @classmethod
    def of(cls, pid: int, total: float) -> Reading:
        return cls(thread_seconds(pid), python_seconds(pid), total)


def split(before: Reading, after: Reading, wall_seconds: float) -> dict[str, float]:
    """Cores (CPU seconds per wall second) by kind of thread between two readings, the
    largest first; what is left of the tree's total went to threads and processes that
    ended in between (Hadoop's forked chmod, finished task threads)."""
    spent = by_kind(before.threads, after.threads)
    spent["Python driver"] = after.python - before.python
    spent["ended threads and forked processes"] = max(
        0.0, (after.total - before.total) - sum(spent.values())
    )
    return {kind: round(seconds / wall_seconds, 3) for kind, seconds in spent.most_common()}
