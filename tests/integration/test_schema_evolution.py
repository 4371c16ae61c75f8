"""Schema evolution on the real broker, schema registry and Spark, under one streaming driver
that never restarts.

1. Version 1 of the event schema is registered; JSON events (the platform's and the
   tutorial's shapes) and Avro v1 records stream in.
2. Version 2 (an optional coupon code with a default) is registered while the driver runs;
   the producers switch to it mid-stream, some still writing v1.
3. An incompatible version (a field retyped, a field added without a default) is refused at
   registration with what breaks; no producer can be made for it, nothing is sent.
4. The registry and its PostgreSQL stop.  Avro records of a version registered just before
   (an id the driver has never read) arrive: the driver waits for the registry and says so in
   its log, judging none of them; the registry comes back holding every version (its storage
   survived the stop) and the records are read.
5. Page views an hour on close every window: every table equals the oracle over every event
   sent, JSON and Avro alike, and no event became a dead letter.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from include.event_schema import schema_as_of, schema_text
from include.kafka.client import end_offsets, producer, read_to_end
from include.kafka.topics import provision
from include.registry import (
    AvroEncoder,
    SchemaNotRegistered,
    SchemaRefused,
    register,
    subject_versions,
)
from include.settings import Settings
from tests.conftest import poll
from tests.integration.conftest import isolated_settings
from tests.integration.dataset import (
    COMPRESSION,
    ORACLES,
    expected_rows,
    seeded_events,
    table_rows,
    wire_value,
)
from tests.integration.streaming import launch, progress_records, said_wrong

pytestmark = pytest.mark.integration


def compatible_v3() -> str:
    """Version 2 plus a currency with a default: what BACKWARD allows."""
    document = schema_as_of(2)
    document["fields"].append({"name": "currency", "type": "string", "default": "EUR"})
    return json.dumps(document)


def incompatible() -> str:
    """A price retyped to double and a field added without a default."""
    document = schema_as_of(2)
    for field in document["fields"]:
        if field["name"] == "price":
            field["type"] = "double"
    document["fields"].append({"name": "channel", "type": "string"})
    return json.dumps(document)


@pytest.fixture(scope="module")
def evolution(kafka, registry, platform_env, tmp_path_factory):
    with (
        pytest.MonkeyPatch.context() as mp,
        isolated_settings(tmp_path_factory, "evolution") as settings,
    ):
        # A batch 2 s after the last record, not 10: each phase is read sooner.
        mp.setenv("ECOM_SPARK__TRIGGER_SECONDS", "2")
        settings = Settings()
        provision(settings)
        log = settings.paths.log_dir / "streaming-evolution.log"
        stop_file = tmp_path_factory.mktemp("evolution_ctl") / "stop"
        proc = launch(settings, log, "--stop-file", str(stop_file))
        yield settings, proc, log
        stop_file.touch()
        try:
            proc.wait(60)
        except Exception:
            proc.kill()
            proc.wait(30)


def send(settings, values: list[tuple[bytes, bytes]]) -> None:
    client = producer(settings.bootstrap_servers, compression_type=COMPRESSION)
    for key, value in values:
        client.send(settings.kafka.input_topic, key=key, value=value)
    client.flush()
    client.close()


def read_to_the_end(settings, proc, log) -> None:
    """Wait until the driver's batches have read the input topic up to its end now."""
    topic = settings.kafka.input_topic
    ends = end_offsets(settings.bootstrap_servers, topic)[topic]

    def read_all(records: list[dict]) -> bool:
        assert proc.poll() is None, f"the driver exited: {said_wrong(log)}"
        done = [r for r in records if r["name"] == "pipeline"]
        if not done:
            return False
        (source,) = done[-1]["sources"]
        read = source["endOffset"].get(topic, {})
        return all(int(read.get(p, 0)) >= int(o) for p, o in ends.items())

    poll(
        lambda: progress_records(settings),
        read_all,
        f"the driver to read {topic} to {ends}",
        timeout=240,
        interval=1,
    )


def keyed(events: list[dict], encoders: dict, offset: int = 0) -> list[tuple[bytes, bytes]]:
    return [
        (event["user_id"].encode(), wire_value(offset + i, event, encoders))
        for i, event in enumerate(events)
    ]


def test_producers_switch_versions_mid_stream_and_every_table_stays_exact(
    evolution, registry, postgres
):
    settings, proc, log = evolution
    sent, flush = seeded_events()
    thirds = len(sent) // 3
    first, second, third = sent[:thirds], sent[thirds : 2 * thirds], sent[2 * thirds :]

    # 1. v1 only: JSON and Avro v1 (wire_value's "v2" turns are v1 too)
    v1 = register(settings, schema_text(1))
    encoder_v1 = AvroEncoder(settings, schema_text(1))
    send(settings, keyed(first, {1: encoder_v1, 2: encoder_v1}))
    poll(
        lambda: table_rows("revenue_by_category", settings, ["window_start"]),
        lambda rows: proc.poll() is None and len(rows) > 0,
        "the first closed revenue windows (v1 and JSON)",
        timeout=240,
        interval=1,
    )

    # 2. v2 registered mid-stream; producers of both versions write on
    v2 = register(settings, schema_text(2))
    assert v2.version == v1.version + 1 and v2.schema_id != v1.schema_id
    send(settings, keyed(second, {1: encoder_v1, 2: AvroEncoder(settings)}, offset=thirds))
    read_to_the_end(settings, proc, log)

    # 3. an incompatible version: refused with what breaks; nothing can be sent with it
    before = end_offsets(settings.bootstrap_servers, settings.kafka.input_topic)
    with pytest.raises(SchemaRefused) as refused:
        register(settings, incompatible())
    message = str(refused.value)
    assert "'price' changes type" in message and "'channel' is added without a default" in message
    assert "BACKWARD" in message
    with pytest.raises(SchemaNotRegistered):
        AvroEncoder(settings, incompatible())
    assert end_offsets(settings.bootstrap_servers, settings.kafka.input_topic) == before
    assert [r.version for r in subject_versions(settings)] == [v1.version, v2.version]

    # 4. the registry goes down after a compatible v3 is registered; its records wait for it
    v3 = register(settings, compatible_v3())
    encoder_v3 = AvroEncoder(settings, compatible_v3())
    registry.stop(timeout=30)
    postgres.stop(timeout=30)
    try:
        send(settings, keyed(third, {1: encoder_v3, 2: encoder_v3}, offset=2 * thirds))
        waiting = f"did not answer for schema id {v3.schema_id}"
        poll(
            lambda: log.read_text(errors="replace"),
            lambda text: waiting in text,
            f"the driver's log line saying it waits for the registry ({waiting!r})",
            timeout=120,
            interval=1,
        )
        assert proc.poll() is None, f"the driver exited: {said_wrong(log)}"
    finally:
        postgres.start()
        registry.start()
    # The storage survived: every version is still there, under the same ids.
    held = subject_versions(settings)
    assert [(r.version, r.schema_id) for r in held] == [
        (v1.version, v1.schema_id),
        (v2.version, v2.schema_id),
        (v3.version, v3.schema_id),
    ]

    # 5. close every window; every table equals the oracle over all the events sent
    send(settings, [(e["user_id"].encode(), json.dumps(e).encode()) for e in flush])
    for analytic in ORACLES:
        expected = expected_rows(analytic, sent, flush, settings)
        got = poll(
            lambda analytic=analytic, expected=expected: table_rows(
                analytic, settings, expected.columns
            ),
            lambda rows, expected=expected: proc.poll() is None and len(rows) >= len(expected),
            f"{len(expected)} {analytic} rows",
            timeout=300,
            interval=1,
        )
        assert len(got) == len(expected), f"{analytic}: rows the oracle does not have"
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    letters = read_to_end(settings.bootstrap_servers, settings.kafka.dead_letter_topic)
    assert [json.loads(r.value)["reason"] for r in letters] == []
