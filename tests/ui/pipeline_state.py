"""A state dir that looks like two hours of a running pipeline, built from known numbers.

The pages must show exactly these numbers: the sink tables are the oracle over generated
events, the progress records and the supervisor's verdicts are written here by hand, and
the quality history comes from real quality runs over those tables.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from include import analytics
from include.generators import EventGenerator
from include.quality.run import run_quality
from include.quality.source import RecordsInput, SourceRecord
from include.settings import Settings
from include.streaming.progress import progress_path
from tests import oracle

DEAD_LETTERS = 7
# The dead-letter output's rows in each batch's progress record, of the 600 input records
# the batch read: 70%, more than the half the health page must say loudly.
DLQ_PER_BATCH = 420
# query -> (state, lag, input rate, batch ms, state rows) as the pages must show them
QUERIES = {
    "revenue_by_category": ("running", 0, 12.5, 2300, 345),
    "high_value_users": ("lagging", 61_234, 48.0, 9100, 1290),
    "conversion_funnel": ("running", 12, 12.5, 2600, 5120),
    "user_sessions": ("stalled", 4_321, 0.0, 0, 2210),
    "click_to_purchase": ("dead", 987, None, None, None),
    "dead_letters": ("running", 0, 12.5, 400, 0),
}
QUALITY_RUN_ID = "manual__2026-11-26T10:00:00+00:00"


@dataclass
class Crafted:
    events: list[dict]
    revenue_by_category: dict[str, Decimal]  # over every purchase: what the page must show
    quality_runs: list


def _records(events: list[dict]) -> list[SourceRecord]:
    return [
        SourceRecord(
            i % 3,
            i // 3,
            int(oracle.event_time(e).timestamp() * 1000),
            json.dumps(e).encode(),
        )
        for i, e in enumerate(events)
    ]


LONG_CATEGORIES = [
    f"{name} and everything that goes with it"
    for name in (
        "Electronics",
        "Clothing",
        "Books",
        "Home and Garden",
        "Sports",
        "Beauty",
        "Toys",
        "Grocery",
        "Automotive",
        "Pet Supplies",
        "Office Products",
    )
]


def _write(settings: Settings, table: str, frame: pd.DataFrame, mode: str = "overwrite") -> None:
    arrow = pa.Table.from_pandas(frame, schema=analytics.SCHEMAS[table], preserve_index=False)
    write_deltalake(str(settings.paths.table_path(table)), arrow, mode=mode)


def build(settings: Settings, now: datetime) -> Crafted:
    start = (now - timedelta(hours=2)).replace(second=0, microsecond=0)
    generator = EventGenerator(seed=8, users=150, products=30)
    events = list(generator.stream(start, timedelta(seconds=2), 3500))
    # Eleven long category names: more series than the chart has colours, and a legend
    # wider than the figure.
    for event in events:
        event["category"] = LONG_CATEGORIES[int(event["product_id"][-5:]) % len(LONG_CATEGORIES)]
    a = settings.analytics
    revenue = oracle.expected_revenue_by_category(events, a)
    _write(settings, analytics.REVENUE_BY_CATEGORY.name, revenue)
    _write(settings, analytics.CONVERSION_FUNNEL.name, oracle.expected_conversion_funnel(events, a))
    dead = pd.DataFrame(
        [
            {
                "reason": "not_json: the value is not a JSON document",
                "reason_code": "not_json",
                "source_topic": "ecommerce-events",
                "source_partition": 0,
                "source_offset": 100_000 + i,
                "kafka_timestamp": pd.Timestamp(now - timedelta(minutes=i)),
                "raw_key": b"",
                "raw_value": b"{oops",
                "raw_value_text": "{oops",
                "raw_value_bytes": 5,
            }
            for i in range(DEAD_LETTERS)
        ],
        columns=analytics.DEAD_LETTERS.columns,
    )
    _write(settings, analytics.DEAD_LETTERS.name, dead)

    # Progress: one record a minute per query for the last two hours; the last one holds
    # the numbers of QUERIES.
    lines = []
    for minute in range(120, -1, -1):
        moment = now - timedelta(minutes=minute)
        for query, (_, _, rate, batch_ms, state_rows) in QUERIES.items():
            last = minute == 0
            lines.append(
                {
                    "name": query,
                    "timestamp": moment.isoformat().replace("+00:00", "Z"),
                    "batchId": 120 - minute,
                    "numInputRows": 600,
                    "inputRowsPerSecond": rate if last else 10.0,
                    "processedRowsPerSecond": 50.0,
                    "batchDurationMs": batch_ms if last else 2000,
                    "stateRowsTotal": state_rows if last else 100 + minute,
                    "rowsDroppedByWatermark": 1 if minute in (5, 6) else 0,
                    # 600 input records a batch (a minute), most of them refused.
                    "sources": [
                        {"endOffset": {settings.kafka.input_topic: {"0": 600 * (120 - minute)}}}
                    ],
                    "numOutputRows": DLQ_PER_BATCH,
                }
            )
    path = progress_path(settings.paths.metrics_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    verdicts = [
        {
            "query": query,
            "state": state,
            "reason": f"{query} {state}: crafted for the UI test",
            "action": "none",
            "total_lag": lag,
            "driver_pid": None,
        }
        for query, (state, lag, *_rest) in QUERIES.items()
    ]
    (settings.paths.metrics_dir / "health.json").write_text(
        json.dumps({"at": now.timestamp(), "queries": verdicts})
    )

    # Quality: a clean run, then a duplicated window (a failed exactly-once check).
    source = RecordsInput(_records(events))
    tables = [
        analytics.REVENUE_BY_CATEGORY.name,
        analytics.CONVERSION_FUNNEL.name,
        analytics.DEAD_LETTERS.name,
    ]
    first = run_quality(settings, source, tables=tables, now=now)
    _write(settings, analytics.REVENUE_BY_CATEGORY.name, revenue.iloc[[0]], mode="append")
    second = run_quality(
        settings,
        source,
        tables=tables,
        now=now,
        airflow={"dag_id": "data_quality", "run_id": QUALITY_RUN_ID, "try_number": 1},
    )

    totals: dict[str, Decimal] = defaultdict(Decimal)
    for event in oracle.first_of_each_event_id(events):
        if event["event_type"] == "purchase":
            totals[event["category"]] += Decimal(str(event["revenue"]))
    return Crafted(events, dict(totals), [first, second])
