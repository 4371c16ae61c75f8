"""Where the streaming driver's JVM spends its CPU, from a Java Flight Recorder file.

Record the driver while it runs (`make up`, or a benchmark run), then summarise:

    jcmd <pid of SparkSubmit> JFR.start duration=90s filename=/tmp/driver.jfr settings=profile
    .venv/bin/python -m benchmarks.jfr_summary /tmp/driver.jfr

Each CPU sample's stack is put in one category (the first rule that matches, in the order
below), and the shares are printed per category and per thread kind.  Spark's stacks are
deep: the JVM keeps 64 frames unless started with -XX:FlightRecorderOptions:stackdepth=512,
and a cut stack may land in "other".
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

# (category, any of these in a frame's class.method) -- the first match wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("codegen: compiling (janino)", ("org.codehaus.janino", "CodeGenerator$.doCompile")),
    ("codegen: stripping comments", ("CodeFormatter",)),
    ("codegen: generating source", ("doCodeGen", "CodegenContext", "codegen.Block", ".genCode")),
    ("forking a process (chmod, stat, rm)", ("Shell.runCommand", "ProcessImpl")),
    ("Java (de)serialization of tasks", ("ObjectInputStream", "ObjectOutputStream")),
    ("RocksDB state store", ("RocksDB",)),
    ("Kafka client", ("org.apache.kafka",)),
    ("Delta", ("io.delta", "sql.delta")),
    ("Parquet", ("parquet",)),
    ("generated code (the rows' own work)", ("GeneratedClass",)),
    (
        "analysing, optimising, planning",
        ("catalyst.analysis", "catalyst.optimizer", "RuleExecutor"),
    ),
)


def category(frames: Sequence[str]) -> str:
    for name, needles in CATEGORIES:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    return "other"


def thread_kind(name: str) -> str:
    if name.startswith("Executor task launch worker"):
        return "task threads"
    if name.startswith("stream execution thread"):
        return "query threads (planning, commits, foreachBatch)"
    return "other threads"


def summarise(samples: Iterable[tuple[str, Sequence[str]]]) -> dict:
    """(thread name, frames) per sample -> shares by category, and by thread kind."""
    by_category: Counter[str] = Counter()
    by_thread: dict[str, Counter[str]] = defaultdict(Counter)
    for thread, frames in samples:
        found = category(frames)
        by_category[found] += 1
        by_thread[thread_kind(thread)][found] += 1
    total = sum(by_category.values())
    return {
        "samples": total,
        "categories": {k: round(v / total, 3) for k, v in by_category.most_common()},
        "threads": {k: sum(v.values()) for k, v in by_thread.items()},
    }


def read_samples(jfr: Path) -> list[tuple[str, list[str]]]:
    tool = shutil.which("jfr")
    if tool is None:
        raise SystemExit("the JDK's `jfr` tool is not on PATH (it comes with every JDK 17+)")
    printed = subprocess.run(
        [
            tool,
            "print",
            "--json",
            "--stack-depth",
            "512",
            "--events",
            "jdk.ExecutionSample",
            str(jfr),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = []
    for event in json.loads(printed)["recording"]["events"]:
        values = event["values"]
        frames = [
            f"{f['method']['type']['name'].replace('/', '.')}.{f['method']['name']}"
            for f in values["stackTrace"]["frames"]
        ]
        samples.append((values["sampledThread"]["javaName"] or "", frames))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jfr_summary")
    parser.add_argument("recording", type=Path)
    args = parser.parse_args(argv)
    found = summarise(read_samples(args.recording))
    print(f"{found['samples']} CPU samples")
    for name, share in found["categories"].items():
        print(f"{share:6.1%}  {name}")
    for kind, count in found["threads"].items():
        print(f"{count / found['samples']:6.1%}  of the samples on {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
