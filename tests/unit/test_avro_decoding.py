"""Unit tests for the Java Avro decoder (jvm/avro-json) through spark_jobs.avro.

Records are encoded here with fastavro in Confluent's wire format; the schema registry is a
small in-process HTTP server serving ``/schemas/ids/<id>`` from a dict (a real registry is
the integration tests' business).  Every expected JSON object is worked out from the input
record in this file (:func:`expected_json`), never taken from the decoder's output.
"""

from __future__ import annotations

import copy
import io
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fastavro
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from include.runtime.spark_launch import PROJECT_JAR_GROUP
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from spark_jobs.avro import avro_to_json, is_confluent_avro, register_avro_udf

READER_TEXT = (PROJECT_ROOT / "include" / "schemas" / "ecommerce_event.avsc").read_text()
READER: dict[str, Any] = json.loads(READER_TEXT)
READER_FIELDS = [field["name"] for field in READER["fields"]]


def writer_schema(
    *,
    version: int = 2,
    drop: tuple[str, ...] = (),
    extra: tuple[dict[str, Any], ...] = (),
    retype: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A writer schema derived from the contract: the fields of ``version`` (a field's
    "since" is the version that added it), minus ``drop``, plus ``extra``, with the types
    of ``retype`` changed."""
    schema = copy.deepcopy(READER)
    fields = [
        field
        for field in schema["fields"]
        if field.get("since", 1) <= version and field["name"] not in drop
    ]
    for field in fields:
        if retype and field["name"] in retype:
            field["type"] = retype[field["name"]]
    schema["fields"] = [*fields, *extra]
    return schema


V1 = writer_schema(version=1)
V2 = writer_schema(version=2)

PURCHASE: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "purchase",
    "timestamp": datetime(2026, 12, 7, 22, 10, 31, 123456, tzinfo=UTC),
    "user_id": "user_000001",
    "product_id": "prod_00001",
    "product_name": 'Books Classic 1 — «édition» "quoted"',
    "category": "Books",
    "price": Decimal("19.9"),
    "quantity": 2,
    "session_id": "s-1",
    "device_type": "mobile",
    "country": "US",
    "revenue": Decimal("39.8"),
}


def framed(schema_id: int, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """Confluent's wire format: magic byte 0, the id as a big-endian int, the Avro body."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return b"\x00" + struct.pack(">i", schema_id) + body.getvalue()


def instant_text(moment: datetime) -> str:
    """ISO-8601 UTC text as java.time.Instant prints it: the fraction in groups of three
    digits, none when it is zero, and a "Z"."""
    moment = moment.astimezone(UTC)
    micros = moment.microsecond
    if micros == 0:
        fraction = ""
    elif micros % 1000 == 0:
        fraction = f".{micros // 1000:03d}"
    else:
        fraction = f".{micros:06d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def money_text(amount: Decimal) -> str:
    """A decimal(…, 2) as plain JSON number text: two decimals, no exponent."""
    return f"{amount.quantize(Decimal('0.01')):f}"


def expected_json(record: dict[str, Any]) -> dict[str, Any]:
    """The object the decoder must produce for ``record`` read with the contract: the reader's
    fields in its order, its default (null) for a field the record lacks, money as number
    text with two decimals, timestamps as ISO text.  Numbers with a fraction are compared as
    their JSON text (:func:`decoded`), so 19.90 and 19.9 differ."""
    out: dict[str, Any] = {}
    for name in READER_FIELDS:
        value = record.get(name)
        if isinstance(value, Decimal):
            value = money_text(value)
        elif isinstance(value, datetime):
            value = instant_text(value)
        out[name] = value
    return out


def decoded(text: str) -> dict[str, Any]:
    """The decoder's JSON, numbers with a fraction kept as their text."""
    parsed: dict[str, Any] = json.loads(text, parse_float=str)
    return parsed


# ---------------------------------------------------------------- the registry


class Registry:
    """A Confluent-compatible registry's one endpoint the decoder uses, from a dict; a 404
    like the real ones for an id it does not hold."""

    def __init__(self, port: int = 0) -> None:
        self.schemas: dict[int, str] = {}
        self.requests = 0
        # How many of the next requests get a 503, as from a registry that is restarting.
        self.unavailable = 0
        # How many get a bare 404, as from a server that serves no registry at that path.
        self.wrong_path = 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests += 1
                prefix = "/schemas/ids/"
                text = None
                if self.path.startswith(prefix) and self.path[len(prefix) :].isdigit():
                    text = registry.schemas.get(int(self.path[len(prefix) :]))
                if registry.unavailable > 0:
                    registry.unavailable -= 1
                    status = 503
                    body = {"error_code": 50003, "message": "unavailable"}
                elif registry.wrong_path > 0:
                    registry.wrong_path -= 1
                    status, body = 404, {"detail": "Could not find resource for full path"}
                elif text is None:
                    status = 404
                    body = {"error_code": 40403, "message": "Schema not found"}
                else:
                    status, body = 200, {"schema": text}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._handler = Handler
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Registry:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def add(self, schema_id: int, schema: dict[str, Any] | str) -> None:
        self.schemas[schema_id] = schema if isinstance(schema, str) else json.dumps(schema)


@pytest.fixture
def registry() -> Iterator[Registry]:
    """A fresh registry per test: a new port, so a new URL, so nothing the decoder cached for
    another test (its caches live as long as the JVM) applies."""
    server = Registry().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def udf_spark(spark: SparkSession) -> SparkSession:
    jar_dir = Settings().jar_dir / PROJECT_JAR_GROUP
    if not list(jar_dir.glob("*.jar")):
        pytest.fail(f"no UDF jar in {jar_dir}: run `make setup` (or bash scripts/build-jvm.sh)")
    register_avro_udf(spark)
    return spark


def decode(
    spark: SparkSession, url: str, values: Sequence[bytes | None]
) -> list[tuple[str | None, str | None]]:
    """(json, error) of each value, in order."""
    frame = spark.createDataFrame(list(enumerate(values)), "i int, value binary")
    rows = (
        frame.select("i", avro_to_json(F.col("value"), url, READER_TEXT).alias("r"))
        .orderBy("i")
        .select("r.json", "r.error")
        .collect()
    )
    return [(row.json, row.error) for row in rows]


# ---------------------------------------------------------------- decoding


def test_v1_writer_read_with_the_v2_reader_gets_the_default(
    udf_spark: SparkSession, registry: Registry
) -> None:
    assert "coupon_code" not in {f["name"] for f in V1["fields"]}
    registry.add(1, V1)
    [(text, error)] = decode(udf_spark, registry.url, [framed(1, V1, PURCHASE)])
    assert error is None and text is not None
    result = decoded(text)
    assert result == expected_json(PURCHASE)
    assert result["coupon_code"] is None
    assert result["price"] == "19.90" and result["timestamp"] == "2026-12-07T22:10:31.123456Z"
    assert list(result) == READER_FIELDS


def test_v2_writer_with_a_coupon_and_a_page_view_without_revenue(
    udf_spark: SparkSession, registry: Registry
) -> None:
    registry.add(2, V2)
    with_coupon = {**PURCHASE, "coupon_code": "WINTER-10"}
    view = {
        **PURCHASE,
        "event_type": "page_view",
        "quantity": 0,
        "revenue": None,
        "coupon_code": None,
        "timestamp": datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
    }
    results = decode(udf_spark, registry.url, [framed(2, V2, with_coupon), framed(2, V2, view)])
    assert [error for _, error in results] == [None, None]
    first, second = (decoded(text or "") for text, _ in results)
    assert first == expected_json(with_coupon) and first["coupon_code"] == "WINTER-10"
    assert second == expected_json(view)
    assert second["revenue"] is None and second["timestamp"] == "2026-01-01T00:00:00Z"


def test_a_field_the_reader_lacks_is_dropped(udf_spark: SparkSession, registry: Registry) -> None:
    extra = (
        {"name": "referrer", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    )
    schema = writer_schema(extra=extra)
    registry.add(7, schema)
    record = {**PURCHASE, "coupon_code": None, "referrer": "newsletter", "tags": ["a", "b"]}
    [(text, error)] = decode(udf_spark, registry.url, [framed(7, schema, record)])
    assert error is None
    result = decoded(text or "")
    assert "referrer" not in result and "tags" not in result
    assert result == expected_json(record)


def test_money_and_time_keep_their_precision(udf_spark: SparkSession, registry: Registry) -> None:
    registry.add(3, V2)
    start = datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    records = [
        {**PURCHASE, "price": Decimal("0.10"), "revenue": Decimal("0.20"), "timestamp": start},
        {
            **PURCHASE,
            "price": Decimal("1234567890.00"),
            "quantity": 1,
            "revenue": Decimal("1234567890.00"),
            "timestamp": start + timedelta(microseconds=1),
        },
        {
            **PURCHASE,
            "price": Decimal("0"),
            "revenue": Decimal("0.00"),
            "timestamp": datetime(1999, 12, 31, 12, 0, 0, 5000, tzinfo=UTC),
        },
        # A time given in another zone is the same instant, printed in UTC.
        {
            **PURCHASE,
            "timestamp": datetime(2026, 6, 1, 7, 30, 0, 1, tzinfo=UTC).astimezone(
                datetime.now().astimezone().tzinfo
            ),
        },
    ]
    results = decode(udf_spark, registry.url, [framed(3, V2, r) for r in records])
    assert [error for _, error in results] == [None] * len(records)
    got = [decoded(text or "") for text, _ in results]
    assert got == [expected_json(r) for r in records]
    assert [g["price"] for g in got] == ["0.10", "1234567890.00", "0.00", "19.90"]
    assert [g["timestamp"] for g in got] == [
        "2026-03-01T23:59:59.999999Z",
        "2026-03-02T00:00:00Z",
        "1999-12-31T12:00:00.005Z",
        "2026-06-01T07:30:00.000001Z",
    ]


def test_a_promoted_type_and_free_text(udf_spark: SparkSession, registry: Registry) -> None:
    # Avro promotes bytes to string: a writer that sends the category as bytes is readable.
    # A name with quotes, control characters and non-ASCII text must stay valid JSON.
    schema = writer_schema(retype={"category": "bytes"})
    registry.add(4, schema)
    name = 'a "b"\n\tc\\ \u00fc \U0001f600 \x01'
    record = {**PURCHASE, "category": b"Books", "product_name": name, "coupon_code": None}
    [(text, error)] = decode(udf_spark, registry.url, [framed(4, schema, record)])
    assert error is None
    assert decoded(text or "") == expected_json({**record, "category": "Books"})


# ---------------------------------------------------------------- dead letters


def test_unknown_schema_id(udf_spark: SparkSession, registry: Registry) -> None:
    registry.add(1, V2)
    value = framed(99, V2, PURCHASE)
    assert decode(udf_spark, registry.url, [value]) == [(None, "avro_unknown_schema_id:99")]


def test_truncated_body_and_trailing_bytes_are_corrupt(
    udf_spark: SparkSession, registry: Registry
) -> None:
    registry.add(5, V2)
    whole = framed(5, V2, PURCHASE)
    results = decode(
        udf_spark,
        registry.url,
        [whole[:-1], whole[: len(whole) // 2], whole + b"\x00", whole + b"garbage", whole],
    )
    assert [error for _, error in results] == [
        "avro_corrupt_body:5",
        "avro_corrupt_body:5",
        "avro_corrupt_body:5",
        "avro_corrupt_body:5",
        None,
    ]
    assert [text for text, _ in results][:4] == [None] * 4


def test_a_body_written_with_another_schema_is_corrupt(
    udf_spark: SparkSession, registry: Registry
) -> None:
    # Id 6 says v1, but the body is a v2 record with a coupon: the reader takes the coupon's
    # union index and string as the end of the record and finds bytes left over.
    registry.add(6, V1)
    body = framed(6, V2, {**PURCHASE, "coupon_code": "X"})
    assert decode(udf_spark, registry.url, [body]) == [(None, "avro_corrupt_body:6")]


def test_unreadable_writer_schemas(udf_spark: SparkSession, registry: Registry) -> None:
    # country is required by the reader, without a default; quantity as a string does not
    # promote to an int; a timestamp in milliseconds would read as microseconds; a price of
    # another scale would be off by a factor of ten; the last one is no Avro schema at all.
    no_country = writer_schema(drop=("country",))
    text_quantity = writer_schema(retype={"quantity": "string"})
    millis = writer_schema(
        retype={"timestamp": {"type": "long", "logicalType": "timestamp-millis"}}
    )
    scale_3 = writer_schema(
        retype={"price": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3}}
    )
    registry.add(10, no_country)
    registry.add(11, text_quantity)
    registry.add(12, millis)
    registry.add(13, scale_3)
    registry.add(14, '{"type": "record", "name": "Broken", "fields": [{"name": "x"}]}')
    values = [
        framed(10, no_country, {k: v for k, v in PURCHASE.items() if k != "country"}),
        framed(11, text_quantity, {**PURCHASE, "quantity": "2"}),
        framed(12, millis, PURCHASE),
        framed(13, scale_3, PURCHASE),
        b"\x00" + struct.pack(">i", 14) + b"\x02x",
    ]
    assert decode(udf_spark, registry.url, values) == [
        (None, "avro_unreadable_schema:10"),
        (None, "avro_unreadable_schema:11"),
        (None, "avro_unreadable_schema:12"),
        (None, "avro_unreadable_schema:13"),
        (None, "avro_unreadable_schema:14"),
    ]


def test_bad_framing_and_null(udf_spark: SparkSession, registry: Registry) -> None:
    registry.add(1, V2)
    json_event = json.dumps({"event_id": "e-1"}).encode()
    avro = framed(1, V2, PURCHASE)
    values: list[bytes | None] = [b"", b"\x00", b"\x00\x00\x00\x00", b"\x01" + avro[1:], json_event]
    assert decode(udf_spark, registry.url, [*values, None]) == [
        *[(None, "avro_bad_framing")] * len(values),
        (None, None),
    ]
    # None of these needed the registry.
    assert registry.requests == 0


def test_is_confluent_avro(udf_spark: SparkSession) -> None:
    values = [b"\x00\x00\x00\x00\x01\x02", b"\x00", b'{"a": 1}', b" {}", b"", None]
    frame = udf_spark.createDataFrame(list(enumerate(values)), "i int, value binary")
    rows = frame.select("i", is_confluent_avro(F.col("value")).alias("avro")).orderBy("i")
    assert [row.avro for row in rows.collect()] == [True, True, False, False, False, None]


# ---------------------------------------------------------------- a registry that is down


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_decoder_waits_for_a_registry_that_is_down(udf_spark: SparkSession) -> None:
    # Nothing listens on the port yet: the decoder must wait (1 s, then 2 s) and decode the
    # record once the registry is up, neither skipping it nor calling it unknown.
    later = Registry(free_port())
    later.add(8, V2)
    starter = threading.Timer(2.0, later.start)
    began = time.monotonic()
    starter.start()
    try:
        [(text, error)] = decode(udf_spark, later.url, [framed(8, V2, PURCHASE)])
    finally:
        starter.join()
        later.stop()
    assert error is None
    assert decoded(text or "") == expected_json(PURCHASE)
    assert time.monotonic() - began >= 2.0


def test_a_registry_answering_503_is_waited_for(
    udf_spark: SparkSession, registry: Registry
) -> None:
    registry.add(8, V2)
    registry.unavailable = 1
    [(text, error)] = decode(udf_spark, registry.url, [framed(8, V2, PURCHASE)])
    assert error is None and decoded(text or "") == expected_json(PURCHASE)
    assert registry.requests == 2


def test_a_404_that_is_no_registry_answer_is_waited_for_not_judged(
    udf_spark: SparkSession, registry: Registry
) -> None:
    # A wrong path in [registry] url: every id would look unknown, every record a dead letter.
    registry.add(8, V2)
    registry.wrong_path = 1
    [(text, error)] = decode(udf_spark, registry.url, [framed(8, V2, PURCHASE)])
    assert error is None and decoded(text or "") == expected_json(PURCHASE)
    assert registry.requests == 2


def test_schemas_are_asked_for_once_and_a_404_is_remembered_briefly(
    udf_spark: SparkSession, registry: Registry
) -> None:
    # An id names one schema forever: asked once per JVM.  A 404 is remembered for 10 s, so
    # a burst of records with an unknown id does not ask the registry for each of them.
    registry.add(1, V2)
    for _ in range(2):
        assert decode(udf_spark, registry.url, [framed(1, V2, PURCHASE)])[0][1] is None
        assert decode(udf_spark, registry.url, [framed(2, V2, PURCHASE)]) == [
            (None, "avro_unknown_schema_id:2")
        ]
    assert registry.requests == 2


def test_the_jar_is_where_the_launches_look(tmp_path: Path) -> None:
    from include.runtime.procs import PlatformError
    from include.runtime.spark_launch import connector_jars

    settings = Settings()
    assert any(jar.parent.name == PROJECT_JAR_GROUP for jar in connector_jars(settings))
    empty = settings.model_copy(update={"jar_cache": tmp_path})
    (tmp_path / "spark").mkdir()
    (tmp_path / "spark" / "connector.jar").write_bytes(b"")
    with pytest.raises(PlatformError, match="make setup"):
        connector_jars(empty)
