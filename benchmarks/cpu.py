"""The streaming application's CPU in a benchmark run: its whole process tree's, in total
and minute by minute (benchmarks/threads.py splits it by kind of thread); and its memory:
the tree's resident set and the driver JVM's used heap, sampled as it runs."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its children."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its children so far, counting the
    children that have already ended (Hadoop runs `chmod` for every file it writes)."""
    total = 0.0
    for proc in process_tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    total = 0
    for proc in process_tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / 2**20, 1)


def jvm_heap_mb(pid: int) -> float | None:
    """Used heap of the JVM in the process tree (survivor + eden + old, from the JDK's
    ``jstat -gc``), in MiB; None when there is no JVM or no jstat beside its java."""
    for proc in process_tree(pid):
        try:
            if proc.name() != "java":
                continue
            jstat = Path(proc.exe()).with_name("jstat")
        except psutil.Error:
            continue
        tool = str(jstat) if jstat.exists() else shutil.which("jstat")
        if tool is None:
            return None
        found = subprocess.run(
            [tool, "-gc", str(proc.pid)], capture_output=True, text=True, timeout=30
        )
        rows = found.stdout.splitlines()
        if found.returncode != 0 or len(rows) < 2:
            return None
        row = dict(zip(rows[0].split(), rows[1].split(), strict=False))
        used_kb = sum(float(row.get(k, 0)) for k in ("S0U", "S1U", "EU", "OU"))
        return round(used_kb / 1024, 1)
    return None


class CoresPerMinute:
    """Samples a process tree's CPU each minute, and its memory every `memory_interval`
    seconds, in a thread of its own (a with block)."""

    def __init__(self, pid: int, interval: float = 60.0, memory_interval: float = 10.0) -> None:
        self.pid = pid
        self.interval = interval
        self.memory_interval = memory_interval
        self.cores: list[float] = []
        self.rss_mb: list[float] = []
        self.heap_mb: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        last, waited = cpu_seconds(self.pid), 0.0
        while not self._stop.wait(self.memory_interval):
            waited += self.memory_interval
            try:
                if waited >= self.interval:
                    now = cpu_seconds(self.pid)
                    self.cores.append(round((now - last) / waited, 3))
                    last, waited = now, 0.0
                self.rss_mb.append(rss_mb(self.pid))
                if (heap := jvm_heap_mb(self.pid)) is not None:
                    self.heap_mb.append(heap)
            except (psutil.Error, OSError, subprocess.SubprocessError):
                continue  # the application is ending: a missing sample, not a failed run

    def memory(self) -> dict[str, dict[str, float] | None]:
        """Mean and peak of the samples, per measure (None: not sampled)."""
        return {
            name: {"mean": round(sum(v) / len(v), 1), "max": max(v)} if v else None
            for name, v in (("rss_mb", self.rss_mb), ("heap_mb", self.heap_mb))
        }

    def __enter__(self) -> CoresPerMinute:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
