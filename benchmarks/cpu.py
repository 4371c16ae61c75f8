"""The streaming application's CPU in a benchmark run: its whole process tree's, in total
and minute by minute (benchmarks/threads.py splits it by kind of thread)."""

from __future__ import annotations

import threading

import psutil


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its children so far, counting the
    children that have already ended (Hadoop runs `chmod` for every file it writes)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class CoresPerMinute:
    """Samples a process tree's CPU each minute in a thread of its own (a with block)."""

    def __init__(self, pid: int, interval: float = 60.0) -> None:
        self.pid = pid
        self.interval = interval
        self.cores: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        last = cpu_seconds(self.pid)
        while not self._stop.wait(self.interval):
            now = cpu_seconds(self.pid)
            self.cores.append(round((now - last) / self.interval, 3))
            last = now

    def __enter__(self) -> CoresPerMinute:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
