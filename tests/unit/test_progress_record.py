"""The progress record the listener writes: what the supervisor and the UI read."""

from __future__ import annotations

from spark_jobs.listener import progress_record

PROGRESS = {
    "name": "revenue_by_category",
    "id": "q",
    "runId": "r",
    "batchId": 7,
    "timestamp": "2026-11-26T10:00:00.000Z",
    "numInputRows": 120,
    "inputRowsPerSecond": 12.0,
    "processedRowsPerSecond": 60.0,
    "batchDuration": 2000,
    "durationMs": {"triggerExecution": 2000},
    "eventTime": {"watermark": "2026-11-26T09:59:00.000Z"},
    "sources": [
        {
            "description": "KafkaV2[Subscribe[events]]",
            "endOffset": {"events": {"0": 100, "1": 50, "2": 75}},
            "latestOffset": {"events": {"0": 130, "1": 50, "2": 80}},
            "numInputRows": 120,
        }
    ],
    "stateOperators": [
        {
            "operatorName": "dedupeWithinWatermark",
            "numRowsTotal": 40,
            "memoryUsedBytes": 9,
            "numRowsDroppedByWatermark": 3,
        },
        {
            "operatorName": "stateStoreSave",
            "numRowsTotal": 5,
            "memoryUsedBytes": 4,
            "numRowsDroppedByWatermark": 1,
        },
    ],
}


def test_lag_is_summed_over_partitions_from_the_batch_end() -> None:
    (source,) = progress_record(PROGRESS)["sources"]
    assert source["offsetsBehindLatest"] == (130 - 100) + 0 + (80 - 75)


def test_watermark_drops_and_state_rows_are_totalled_per_query() -> None:
    record = progress_record(PROGRESS)
    assert record["rowsDroppedByWatermark"] == 4
    assert record["stateRowsTotal"] == 45
    assert record["watermark"] == "2026-11-26T09:59:00.000Z"
    assert record["batchDurationMs"] == 2000


def test_a_partition_new_since_the_batch_counts_whole() -> None:
    progress = {**PROGRESS, "sources": [{**PROGRESS["sources"][0]}]}
    progress["sources"][0]["latestOffset"] = {"events": {"0": 100, "1": 50, "2": 75, "3": 9}}
    (source,) = progress_record(progress)["sources"]
    assert source["offsetsBehindLatest"] == 9


def test_a_batch_without_state_or_sources_still_records() -> None:
    record = progress_record({"name": "dead_letters", "batchId": 0})
    assert record["rowsDroppedByWatermark"] == 0
    assert record["stateRowsTotal"] == 0
    assert record["sources"] == []


def test_each_output_gets_its_branchs_operators_and_rows() -> None:
    from spark_jobs.listener import output_records

    def op(name: str, rows: int, dropped: int) -> dict:
        return {"operatorName": name, "numRowsTotal": rows, "numRowsDroppedByWatermark": dropped}

    query = {
        "name": "pipeline",
        "batchId": 3,
        "numInputRows": 9,
        # Spark numbers them depth first through the union: two for the first branch, none
        # for the second, three for the third.
        "stateOperators": [
            op("stateStoreSave", 5, 0),
            op("dedupeWithinWatermark", 100, 2),
            op("symmetricHashJoin", 7, 0),
            op("dedupeWithinWatermark", 30, 1),
            op("dedupeWithinWatermark", 20, 1),
        ],
    }
    got = output_records(query, {"a": 2, "dead": 0, "c": 3}, {"a": 4, "c": 1})
    assert [r["name"] for r in got] == ["a", "dead", "c"]
    assert [r["query"] for r in got] == ["pipeline"] * 3
    assert [r["stateRowsTotal"] for r in got] == [105, 0, 57]
    assert [r["rowsDroppedByWatermark"] for r in got] == [2, 0, 2]
    assert [r["numOutputRows"] for r in got] == [4, 0, 1]  # "dead" wrote nothing
    assert all(r["batchId"] == 3 and r["numInputRows"] == 9 for r in got)
    # Without the sink's report the rows are unknown, not zero.
    assert {r["numOutputRows"] for r in output_records(query, {"a": 2}, None)} == {None}
