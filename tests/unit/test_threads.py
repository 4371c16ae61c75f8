"""The per-thread CPU split of the benchmarks (benchmarks/threads.py)."""

import os
from pathlib import Path

from benchmarks.threads import OTHER, Reading, by_kind, split, thread_kind, thread_seconds


def test_thread_names_map_to_what_they_do() -> None:
    assert thread_kind("C2 CompilerThre") == "JIT compilers"
    assert thread_kind("C1 CompilerThre") == "JIT compilers"
    assert thread_kind("GC Thread#3") == "garbage collector and VM"
    assert thread_kind("Executor task l") == "Spark tasks"
    assert thread_kind("stream executio") == "query threads (planning, commits, sink)"
    assert thread_kind("kafka-producer-") == OTHER


def _stat(tid: int, name: str, user: int, system: int) -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime ...: utime is the 14th field, the 12th after the name.
    return f"{tid} ({name}) S 1 1 1 0 -1 0 0 0 0 0 {user} {system} 0 0 20 0 1 0"


def test_thread_seconds_reads_each_task(tmp_path: Path) -> None:
    hertz = os.sysconf("SC_CLK_TCK")
    for tid, name, user, system in (
        (10, "C2 CompilerThre", 3 * hertz, hertz),
        (11, "a (b) c", 0, hertz),
    ):
        task = tmp_path / "7" / "task" / str(tid)
        task.mkdir(parents=True)
        (task / "stat").write_text(_stat(tid, name, user, system))
    found = thread_seconds(7, proc=tmp_path)
    assert found == {10: ("C2 CompilerThre", 4.0), 11: ("a (b) c", 1.0)}


def test_by_kind_counts_new_threads_whole_and_old_ones_by_difference() -> None:
    before = {1: ("C2 CompilerThre", 10.0), 2: ("Executor task l", 5.0)}
    after = {1: ("C2 CompilerThre", 12.5), 2: ("Executor task l", 6.0), 3: ("Executor task l", 1.5)}
    spent = by_kind(before, after)
    assert spent["JIT compilers"] == 2.5
    assert spent["Spark tasks"] == 2.5


def test_split_gives_what_no_live_thread_explains_to_ended_ones() -> None:
    before = Reading({1: ("C2 CompilerThre", 10.0)}, python=2.0, total=20.0)
    after = Reading({1: ("C2 CompilerThre", 14.0)}, python=3.0, total=30.0)
    assert split(before, after, wall_seconds=10.0) == {
        "ended threads and forked processes": 0.5,
        "JIT compilers": 0.4,
        "Python driver": 0.1,
    }
