"""The benchmarks' pure logic: tool output parsing, latency semantics, summaries."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime

import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from benchmarks import (
    client_variants,
    kafka_tools,
    latency,
    producer_profile,
    producer_variants,
    producers,
    report,
    report_values,
)
from benchmarks.designs import batches_with_events, epoch
from benchmarks.plans import AFTER, PER_BATCH_BEFORE
from benchmarks.progress import caught_up, state_size, time_breakdown
from benchmarks.targets import targets
from include.settings.sections import AnalyticsSettings

# As printed by Kafka 4.1's tools (interim lines first, the summary last).
PRODUCER_OUTPUT = (
    "1195873 records sent, 239174.6 records/sec (68.43 MB/sec), 199.2 ms avg latency, "
    "520.0 ms max latency.\n"
    "2000000 records sent, 251572.3 records/sec (71.98 MB/sec), 191.05 ms avg latency, "
    "620.00 ms max latency, 180 ms 50th, 402 ms 95th, 540 ms 99th, 611 ms 99.9th.\n"
)
CONSUMER_OUTPUT = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
    "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
    "2026-11-27 03:40:49:276, 2026-11-27 03:40:53:391, 572.2046, 139.0532, 2000000, "
    "486026.7315, 2369, 1746, 327.7231, 1145475.3723\n"
)


def test_the_producer_tools_summary_is_its_last_line() -> None:
    result = kafka_tools.parse_producer_performance(PRODUCER_OUTPUT)
    assert result.records == 2_000_000
    assert result.records_per_second == 251572.3
    assert result.mb_per_second == 71.98
    assert result.details["latency_p95_ms"] == 402
    assert result.details["latency_avg_ms"] == 191.05


def test_the_consumer_tools_values_follow_its_header() -> None:
    result = kafka_tools.parse_consumer_performance(CONSUMER_OUTPUT)
    assert (result.records, result.records_per_second) == (2_000_000, 486026.7315)
    assert result.details["fetch_time_ms"] == 1746


def test_a_tool_that_printed_no_result_says_what_it_printed() -> None:
    with pytest.raises(kafka_tools.ToolFailed, match="Topic perf not present"):
        kafka_tools.parse_producer_performance("TimeoutException: Topic perf not present")
    with pytest.raises(kafka_tools.ToolFailed, match="no result"):
        kafka_tools.parse_consumer_performance("WARNING: Exiting before consuming")


def test_the_java_tool_gets_the_platform_producers_settings() -> None:
    props = producers.java_producer_props(
        {"acks": "all", "enable_idempotence": True, "linger_ms": 20, "compression_type": "gzip"}
    )
    assert props == {
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": "20",
        "compression.type": "gzip",
    }


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_row_is_final_when_the_event_that_closes_it_arrives() -> None:
    analytics = AnalyticsSettings(watermark_seconds=60, session_gap_seconds=1800)
    window = {"window_start": "2026-01-01T00:00:00.000Z", "window_end": "2026-01-01T00:01:00.000Z"}
    assert latency.final_at("revenue_by_category", window, analytics) == _epoch(
        "2026-01-01T00:02:00"
    )
    session = {"session_end": datetime(2026, 1, 1, 0, 10)}  # a naive table time is UTC
    assert latency.final_at("user_sessions", session, analytics) == _epoch("2026-01-01T00:41:00")
    click = {"click_time": "2026-01-01T00:00:00Z", "purchase_time": "2026-01-01T00:05:00Z"}
    assert latency.final_at("click_to_purchase", click, analytics) == _epoch("2026-01-01T00:05:00")


def test_latency_counts_only_rows_closed_after_the_run_began() -> None:
    analytics = AnalyticsSettings(watermark_seconds=10)
    began = _epoch("2026-01-01T00:00:00")
    rows = [
        ({"purchase_time": "2026-01-01T00:00:05Z"}, began + 7.5),  # 2.5 s
        ({"purchase_time": "2026-01-01T00:00:10Z"}, began + 10.25),  # 0.25 s
        ({"purchase_time": "2025-12-31T23:59:59Z"}, began + 3),  # closed before: left out
    ]
    assert latency.latencies("click_to_purchase", rows, analytics, began) == [2.5, 0.25]


def test_rows_the_idle_rule_closed_count_from_its_close_not_with_the_steady_ones() -> None:
    analytics = AnalyticsSettings(watermark_seconds=10, idle_close_seconds=60)
    began, stopped = _epoch("2026-01-01T00:00:00"), _epoch("2026-01-01T00:05:00")
    rows = [
        ({"purchase_time": "2026-01-01T00:04:00Z"}, stopped - 58),  # steady: 2 s
        ({"purchase_time": "2026-01-01T00:05:30Z"}, stopped + 63),  # idle: closed at +60
        ({"purchase_time": "2026-01-01T00:07:00Z"}, stopped + 124),  # idle: its own +120
    ]
    assert latency.latencies("click_to_purchase", rows, analytics, began, stopped) == [2]
    assert latency.idle_latencies("click_to_purchase", rows, analytics, stopped) == [3, 4]


def test_percentiles_interpolate_like_the_inclusive_quantiles() -> None:
    values = [0.1 * i**1.5 for i in range(1, 237)]
    expected = statistics.quantiles(values, n=100, method="inclusive")
    found = latency.Percentiles.of(values)
    assert found.rows == 236
    assert found.p50 == pytest.approx(expected[49], abs=1e-3)
    assert found.p95 == pytest.approx(expected[94], abs=1e-3)
    assert found.p99 == pytest.approx(expected[98], abs=1e-3)
    assert latency.Percentiles.of([]).p95 is None


def test_table_rows_carry_the_time_of_the_commit_that_added_them(tmp_path) -> None:
    table = tmp_path / "t"
    write_deltalake(str(table), pd.DataFrame({"k": [1, 2]}))
    write_deltalake(str(table), pd.DataFrame({"k": [3]}), mode="append")
    committed = {h["version"]: h["timestamp"] / 1000 for h in DeltaTable(str(table)).history()}
    found = sorted((row["k"], visible) for row, visible in latency.table_rows(table))
    assert found == [(1, committed[0]), (2, committed[0]), (3, committed[1])]


def test_the_profile_summary_ranks_leaf_frames_and_groups_stacks() -> None:
    raw = "\n".join(
        [
            "main (run.py:1);send_event (include/producer.py:70);encode (json/encoder.py:9) 30",
            "main (run.py:1);send (kafka/producer/kafka.py:900);append (kafka/x.py:3) 20",
            # librdkafka's C calls are the time of their Python caller, send_event itself.
            "main (run.py:1);send_event (include/producer.py:166) 25",
            "main (run.py:1);poll (x.py:1);delivered (include/producer.py:99) 5",
            "main (run.py:1);encode_avro (include/producer.py:140);write (fastavro/w.py:1) 10",
            "main (run.py:1);event (include/generators.py:90) 10",
        ]
    )
    summary = producer_profile.profile_summary(raw, top=2)
    assert summary["samples"] == 100
    assert summary["share_under"] == {
        "generate events": 0.1,
        "encode JSON": 0.3,
        "encode Avro": 0.1,
        "Kafka client": 0.5,
    }
    assert [f["frame"] for f in summary["top_own"]] == [
        "encode (json/encoder.py:9)",
        "send_event (include/producer.py:166)",
    ]


def test_time_breakdown_shares_sum_the_batches_that_read_input() -> None:
    records = [
        {
            "name": "q",
            "numInputRows": 5,
            "durationMs": {"triggerExecution": 1000, "addBatch": 800, "walCommit": 100},
        },
        {
            "name": "q",
            "numInputRows": 5,
            "durationMs": {"triggerExecution": 3000, "addBatch": 2400, "walCommit": 300},
        },
        {"name": "q", "numInputRows": 0, "durationMs": {"triggerExecution": 9000, "addBatch": 0}},
    ]
    shares = time_breakdown(records)["q"]
    assert shares["addBatch"] == 0.8
    assert shares["walCommit"] == 0.1
    assert shares["trigger_seconds_total"] == 4.0


def test_state_size_is_the_peak_per_query_summed() -> None:
    def record(name, rows, memory):
        return {
            "name": name,
            "stateOperators": [
                {"numRowsTotal": r, "memoryUsedBytes": m} for r, m in zip(rows, memory, strict=True)
            ],
        }

    found = state_size(
        [record("a", [3, 4], [10, 0]), record("a", [1, 1], [50, 0]), record("b", [9], [5])]
    )
    assert (found["state_rows"], found["state_memory_bytes"]) == (7 + 9, 50 + 5)


def test_producer_levers_report_the_median_of_interleaved_rounds(monkeypatch) -> None:
    order: list[str] = []
    rates = {"gzip-False": [100, 140], "gzip-True": [150, 160], "lz4-True": [300, 200]}

    def fake(variant, bootstrap, topic, events):
        key = f"{variant.compression}-{variant.crc32c_package}"
        order.append(key)
        return rates[key][order.count(key) - 1]

    monkeypatch.setattr(producer_variants, "timed_variant", fake)
    topics: list[str] = []
    found = producer_variants.compare("b:1", topics.append, 10, rounds=2)
    assert order == ["gzip-False", "gzip-True", "lz4-True"] * 2  # interleaved
    assert len(set(topics)) == 6  # a fresh topic per run
    assert [r["events_per_second"] for r in found] == [120, 155, 250]
    assert [r["ratio_to_before"] for r in found] == [1.0, round(155 / 120, 2), round(250 / 120, 2)]


def test_the_clients_runs_interleave_java_first_and_ratios_are_to_javas_median(
    monkeypatch,
) -> None:
    order: list[str] = []
    rates = {
        "java": [200, 100, 300],
        "confluent-kafka-json": [90, 80, 70],
        "confluent-kafka-avro": [60, 50, 70],
        "kafka-python-json": [20, 30, 25],
        "kafka-python-avro": [15, 10, 20],
    }

    def fake(variant, settings, topic, events, start):
        key = (
            variant.client
            if variant.client == "java"
            else f"{variant.client}-{variant.value_format}"
        )
        order.append(key)
        return rates[key][order.count(key) - 1]

    monkeypatch.setattr(client_variants, "timed_variant", fake)
    monkeypatch.setattr(client_variants, "encoding", lambda events, start: {"json": {}})
    topics: list[str] = []
    found = client_variants.compare(None, topics.append, 10, rounds=3)
    assert order == list(rates) * 3  # Java first, every client and format, each round
    assert len(set(topics)) == 15  # a fresh topic per run
    medians = {r["label"]: r["events_per_second"] for r in found["rows"]}
    assert list(medians.values()) == [200, 80, 60, 25, 15]
    assert [r["ratio_to_java"] for r in found["rows"]] == [1.0, 0.4, 0.3, 0.125, 0.075]
    assert client_variants.faster_client(found) == "confluent-kafka"
    found["rows"][4]["events_per_second"] = 70  # kafka-python faster for Avro only
    assert client_variants.faster_client(found) == "neither"


def test_the_clients_section_says_which_client_the_platform_uses() -> None:
    rows = [
        {"label": v.label, "client": v.client, "format": v.value_format, "events": 1_000}
        | {"events_per_second": rate, "runs": [rate], "ratio_to_java": rate / 200_000}
        for v, rate in zip(
            client_variants.VARIANTS, (200_000, 90_000, 60_000, 30_000, 20_000), strict=True
        )
    ]
    clients = {
        "events": 1_000,
        "rounds": 1,
        "java_record_size": 300,
        "formats": {
            "json": {"encoding_events_per_second": 300_000, "mean_value_bytes": 344.0},
            "avro": {"encoding_events_per_second": 90_000, "mean_value_bytes": 161.5},
        },
        "rows": rows,
    }
    results = {
        "mode": "short",
        "producer": {"platform_client": "confluent-kafka", "clients": clients},
    }
    text = report.render_section(
        "producer_clients_section", report_values.producer_clients(results)
    )
    assert "| confluent-kafka, JSON | 1,000 | 90,000 | 90,000 | 0.450 |" in text
    assert "| kafka-python, Avro | 1,000 | 20,000 | 20,000 | 0.100 |" in text
    assert "JSON 300,000 events/s, Avro 90,000 events/s" in text
    assert "uses confluent-kafka, the faster client in both formats here." in text
    assert "over 1 round, " in text
    assert report_values.producer_clients({"mode": "short", "producer": {}}) is None


def test_each_python_run_gets_its_client_format_and_the_shared_start(monkeypatch) -> None:
    from datetime import timedelta

    seen: list[list[str]] = []

    def run(command, **kwargs):
        seen.append(command)
        out = json.dumps({"events": 5, "seconds": 1.0, "events_per_second": 5, "failed": 0})
        return type("Done", (), {"returncode": 0, "stdout": out + "\n", "stderr": ""})()

    monkeypatch.setattr(client_variants.subprocess, "run", run)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    variant = client_variants.ClientVariant("kafka-python", "avro")
    assert client_variants.timed_python(variant, "b:1", "t", 5, start) == 5
    command = seen[0]
    assert command[command.index("--client") + 1 :] == [
        "kafka-python",
        "--format",
        "avro",
        "--start",
        str(start.timestamp()),
    ]
    # The processes generate the same events from the same start.
    first = producers.bench_events(3, start)
    assert first == producers.bench_events(3, start)
    assert first != producers.bench_events(3, start + timedelta(seconds=1))


def test_the_benchmarks_avro_values_are_the_events_framed_with_the_schema_id() -> None:
    import io
    from datetime import UTC, datetime
    from decimal import Decimal

    import fastavro

    from include.event_schema import HEADER, MAGIC_BYTE, schema_as_of
    from include.generators import EventGenerator

    generator = EventGenerator(seed=5, users=10, products=5)
    events = [generator.event(datetime(2026, 1, 1, 12, tzinfo=UTC)) for _ in range(50)]
    encode = producers.avro_encoder(schema_id=7)
    schema = fastavro.parse_schema(schema_as_of())
    for event in events:
        value = encode(event)
        assert HEADER.unpack(value[: HEADER.size]) == (MAGIC_BYTE, 7)
        record = fastavro.schemaless_reader(io.BytesIO(value[HEADER.size :]), schema, schema)
        assert record["event_id"] == event["event_id"]
        assert record["timestamp"] == datetime.fromisoformat(event["timestamp"])
        assert record["price"] == Decimal(str(event["price"])).quantize(Decimal("0.01"))
        assert record["revenue"] == (
            None if event.get("revenue") is None else Decimal(str(event["revenue"]))
        )


def _latency_run(rate: int, label: str, p95: float) -> dict:
    figures = {"topic": {"p95": p95}, "table": {"p95": p95}}
    return {"rate": rate, "label": label, "analytics": {"revenue_by_category": figures}}


def test_the_latency_targets_read_the_defaults_not_the_before_row_beside_them() -> None:
    results = {
        "mode": "short",
        "latency": [
            _latency_run(2_000, AFTER.label, 4.0),
            _latency_run(2_000, PER_BATCH_BEFORE.label, 40.0),
        ],
    }
    found = {t["name"]: t for t in targets(results)}
    topic = found["latency p95 at 2,000 events/s (worst analytic, topic, not behind)"]
    assert (topic["measured"], topic["met"]) == (4.0, True)
    results["latency"].reverse()
    assert targets(results) == list(found.values())


def test_a_stateless_query_is_caught_up_once_a_late_batch_read_to_the_latest_offset(
    tmp_path,
) -> None:
    from include.streaming.progress import progress_path

    def record(name: str, rows: int, behind: int, watermark: str | None) -> dict:
        return {
            "name": name,
            "timestamp": "2026-11-29T20:00:10.000Z",
            "numInputRows": rows,
            "watermark": watermark,
            "sources": [{"offsetsBehindLatest": behind}],
        }

    def write(*records: dict) -> None:
        path = progress_path(tmp_path / "metrics")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))

    since = epoch("2026-11-29T20:00:00.000Z")
    write(record("dead_letters", 30, 0, None), record("revenue_by_category", 30, 0, "x"))
    assert caught_up(tmp_path, since, ("dead_letters",))
    # A stateful query still has windows to close: it waits for a batch that found nothing.
    assert not caught_up(tmp_path, since, ("dead_letters", "revenue_by_category"))
    write(record("dead_letters", 30, 5, None))
    assert not caught_up(tmp_path, since, ("dead_letters",))
    assert not caught_up(tmp_path, since + 60, ("dead_letters",))


def _batch(name: str, batch_id: int, events_read: int, control_read: int) -> dict:
    """A progress record of a batch that has read the input topic up to `events_read` and
    the idle rule's control topic up to `control_read` (one partition each)."""
    end = {"events": {"0": events_read}, "events-control": {"0": control_read}}
    return {
        "name": name,
        "batchId": batch_id,
        "numInputRows": 1,
        "sources": [{"description": "KafkaV2[Subscribe[events,events-control]]", "endOffset": end}],
    }


def test_throughput_counts_the_batches_that_read_events_not_the_idle_rules_records() -> None:
    records = [
        _batch("pipeline", 0, 150, 0),
        _batch("pipeline", 1, 200, 0),
        _batch("pipeline", 2, 200, 3),  # only control records: the backlog was read
        _batch("dead_letters", 0, 150, 0),
        _batch("dead_letters", 1, 200, 0),
        _batch("dead_letters", 2, 200, 3),
    ]
    found = {(r["name"], r["batchId"]) for r in batches_with_events(records, "events")}
    assert found == {("pipeline", 0), ("pipeline", 1), ("dead_letters", 0), ("dead_letters", 1)}
    # Without a topic every batch with an input row counts (the six queries' design).
    assert len(batches_with_events(records, None)) == 6
