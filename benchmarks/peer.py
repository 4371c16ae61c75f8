"""The peer row's latency: per window, from the window's end to the first output record that
carries the window's final value.

Update mode (benchmarks/tutorial_queries.py) sends a window's row again in every trigger in
which it changed, so a window's rows in its topic are partial values and then, once no event
of it is left to come, its final one; a reader cannot tell which is last.  Here the last
record of each (window, group) key is its final value, and the latency is the Kafka
timestamp of the FIRST record with that value minus the window's end: the earliest moment a
consumer could have had the final figure, had it known.  The platform's append-mode
topics hold one record per window, written once it is final, so the same function measures
them (its figure then includes the watermark delay the platform waits for correctness).

Only windows that lie whole inside the measured run are counted: their first and last
events were sent while the run was producing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from benchmarks.latency import Percentiles, _epoch
from include.kafka.client import read_to_end
from include.settings import Settings


@dataclass(frozen=True)
class WindowLatency:
    """One topic's windows: how many records it held, how many windows lay inside the run,
    how many records each got on average, and the percentiles of the time from their end
    to their final value."""

    records: int
    windows: int
    records_per_window: float | None
    from_window_end: Percentiles


def window_latencies(records: Iterable, since: float, until: float) -> WindowLatency:
    """`records` of one output topic (key, value JSON with window_start and window_end,
    timestamp in ms), for windows inside [since, until] (epoch seconds)."""
    by_key: dict[bytes, list[tuple[int, int, dict, float]]] = {}
    for record in records:
        row = json.loads(record.value)
        by_key.setdefault(record.key, []).append(
            (record.partition, record.offset, row, record.timestamp / 1000)
        )
    latencies, counts, total = [], [], 0
    for versions in by_key.values():
        total += len(versions)
        versions.sort(key=lambda v: (v[0], v[1]))
        final = versions[-1][2]
        start, end = _epoch(final["window_start"]), _epoch(final["window_end"])
        if start < since or end > until:
            continue
        first = next(at for _, _, row, at in versions if row == final)
        latencies.append(first - end)
        counts.append(len(versions))
    return WindowLatency(
        records=total,
        windows=len(latencies),
        records_per_window=round(sum(counts) / len(counts), 2) if counts else None,
        from_window_end=Percentiles.of(latencies),
    )


def measured(settings: Settings, names: Iterable[str], since: float, until: float) -> dict:
    """Per output topic named (``settings.output_topic(name)``), its windows' latencies."""
    return {
        name: asdict(
            window_latencies(
                read_to_end(settings.bootstrap_servers, settings.output_topic(name)),
                since,
                until,
            )
        )
        for name in names
    }
