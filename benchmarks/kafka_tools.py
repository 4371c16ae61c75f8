"""Kafka's own performance tools, from the same jars as the broker: the ceiling.

`org.apache.kafka.tools.ProducerPerformance` and `ConsumerPerformance` come with the
kafka-tools artifact that `make setup` fetches beside the broker (jars/kafka-broker.pom.xml),
so they always match the broker's version.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, field

from include.runtime.tools import jars, java_binary
from include.settings import Settings

log = logging.getLogger("benchmarks.kafka_tools")

PRODUCER_TOOL = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_TOOL = "org.apache.kafka.tools.ConsumerPerformance"

# "500000 records sent, 250000.0 records/sec (71.53 MB/sec), 80.1 ms avg latency, 300.0 ms
# max latency, 70 ms 50th, 200 ms 95th, 280 ms 99th, 299 ms 99.9th."
_PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency"
    r"(?:, (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th)?"
)


@dataclass(frozen=True)
class ToolResult:
    records: int
    records_per_second: float
    mb_per_second: float
    details: dict[str, float] = field(default_factory=dict)


class ToolFailed(RuntimeError):
    pass


def parse_producer_performance(output: str) -> ToolResult:
    """The final summary line of ProducerPerformance (it also prints interim lines)."""
    summaries = [m for m in map(_PRODUCER_SUMMARY.search, output.splitlines()) if m]
    if not summaries:
        raise ToolFailed(f"ProducerPerformance printed no summary:\n{output[-2000:]}")
    last = summaries[-1]
    details = {
        f"latency_{name}_ms": float(last[name])
        for name in ("avg", "max", "p50", "p95", "p99")
        if last[name] is not None
    }
    return ToolResult(int(last["records"]), float(last["rate"]), float(last["mb"]), details)


def parse_consumer_performance(output: str) -> ToolResult:
    """ConsumerPerformance prints a CSV header and one line of values."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if "nMsg.sec" in line:
            names = [n.strip() for n in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            row = dict(zip(names, values, strict=False))
            return ToolResult(
                int(row["data.consumed.in.nMsg"]),
                float(row["nMsg.sec"]),
                float(row["MB.sec"]),
                {
                    "fetch_records_per_second": float(row["fetch.nMsg.sec"]),
                    "fetch_time_ms": float(row["fetch.time.ms"]),
                },
            )
    raise ToolFailed(f"ConsumerPerformance printed no result:\n{output[-2000:]}")


def _run_tool(settings: Settings, tool: str, args: list[str], timeout: float) -> str:
    classpath = ":".join(str(jar) for jar in jars(settings, "kafka"))
    command = [java_binary(), "-Xmx512m", "-cp", classpath, tool, *args]
    log.info("running Kafka's %s", tool.rsplit(".", 1)[-1])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise ToolFailed(f"{tool} did not finish in {timeout:.0f}s") from error
    if done.returncode != 0:
        raise ToolFailed(f"{tool} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def producer_performance(
    settings: Settings,
    topic: str,
    records: int,
    record_size: int,
    producer_props: dict[str, str],
    timeout: float = 900,
) -> ToolResult:
    """Send `records` records of `record_size` bytes as fast as the broker takes them.
    The topic must exist (the platform's brokers do not create topics on first use)."""
    props = [
        f"{k}={v}"
        for k, v in {"bootstrap.servers": settings.bootstrap_servers, **producer_props}.items()
    ]
    args = [
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        "--producer-props",
        *props,
    ]
    return parse_producer_performance(_run_tool(settings, PRODUCER_TOOL, args, timeout))


def consumer_performance(
    settings: Settings, topic: str, messages: int, timeout: float = 900
) -> ToolResult:
    """Read `messages` records of `topic` from its beginning."""
    args = [
        "--bootstrap-server",
        settings.bootstrap_servers,
        "--topic",
        topic,
        "--messages",
        str(messages),
        "--timeout",
        str(int(timeout * 1000)),
    ]
    result = parse_consumer_performance(_run_tool(settings, CONSUMER_TOOL, args, timeout + 60))
    if result.records < messages:
        raise ToolFailed(f"ConsumerPerformance read {result.records} of {messages} records")
    return result
