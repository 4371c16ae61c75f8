"""Avro records beside JSON ones on the input topic: Confluent's wire format, decoded to JSON
text in the JVM so the rest of the pipeline parses both alike.

A Kafka value in Confluent's wire format is byte 0 = magic byte ``0x00``, bytes 1-4 = the
writer schema's id in the schema registry (big-endian int), then the record's Avro binary
encoding with that schema.  A JSON event starts with ``{`` (or whitespace), never with a
zero byte, so the first byte tells the two apart (:func:`is_confluent_avro`).

Producers may register new schema versions while the streaming query runs, so the writer
schema is looked up by id at run time (``GET {registry}/schemas/ids/{id}``) and the record is
resolved to the reader schema, the current contract (``include/schemas/ecommerce_event.avsc``):
a field the writer lacks gets the reader's default, a field the reader lacks is dropped.

The decoding is a Java UDF (``jvm/avro-json``, built into the jar cache by
``scripts/build-jvm.sh``): the hot path runs Spark SQL built-ins only, and a Python UDF would
put a Python worker and a copy of every record in it.  Its result is a struct ``(json,
error)`` with exactly one field set (both null for a null value).

Error policy.  A record that cannot be decoded is a dead letter with one stable reason:

``avro_bad_framing``
    fewer than 5 bytes, or a first byte other than 0;
``avro_unknown_schema_id:<id>``
    the registry answered 404 for the id (kept for 10 s, then asked again: the schema may
    be registered just after its first record);
``avro_unreadable_schema:<id>``
    the writer schema cannot be resolved to the reader schema (a required field missing
    without default, a type that does not promote, a logical type of another meaning);
``avro_corrupt_body:<id>``
    the body does not decode with the writer schema, or bytes are left after the record.

A registry that does not answer (refused, timed out, a 5xx) is never a reason: the task
waits and asks again (1 s, doubling up to 10 s), logging a WARN each time, because the batch's
offsets are committed only once it ends: waiting delays records, guessing would lose them.
Stopping the query interrupts the wait.
"""

from __future__ import annotations

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from include.event_schema import MAGIC_BYTE

AVRO_UDF = "ecom_avro_to_json"
AVRO_UDF_CLASS = "io.github.ecom_platform.avro.ConfluentAvroToJson"
AVRO_UDF_RETURN = "struct<json:string,error:string>"


def register_avro_udf(spark: SparkSession) -> None:
    """Register the Java decoder as :data:`AVRO_UDF` in ``spark``'s session; the jar must be
    on the session's class path (``connector_jars`` puts it there)."""
    spark.udf.registerJavaFunction(AVRO_UDF, AVRO_UDF_CLASS, AVRO_UDF_RETURN)


def avro_to_json(value: Column, registry_url: str, reader_schema: str) -> Column:
    """The struct ``(json, error)`` of a Kafka value in Confluent's Avro wire format: the JSON
    text of the record resolved to ``reader_schema`` (Avro schema JSON text), or the reason
    it is a dead letter.  ``registry_url`` is the registry's Confluent-compatible base URL,
    without a trailing slash.  Needs :func:`register_avro_udf` on the session first."""
    return F.call_function(AVRO_UDF, value, F.lit(registry_url), F.lit(reader_schema))


def is_confluent_avro(value: Column) -> Column:
    """Whether a Kafka value is framed as Confluent Avro: its first byte is the magic byte 0.
    Null for a null value; false for an empty one.  The framing's other checks (length, the
    registry's answer) are the decoder's, so a value that claims Avro is never parsed as
    JSON."""
    first = F.substring(value, 1, 1)
    return F.when(F.length(value) == 0, F.lit(False)).otherwise(first == F.lit(bytes([MAGIC_BYTE])))
