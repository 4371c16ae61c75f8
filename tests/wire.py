"""The events in Kafka records as the tests' oracles read them: JSON, or Avro in the Confluent
wire format decoded in Python (fastavro, include.registry.AvroDecoder), apart from the Spark
apps' own decoder (jvm/avro-json) whose output the oracles check."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from include.event_schema import is_framed
from include.registry import AvroDecoder
from include.settings import Settings


def event_of(value: bytes, avro: AvroDecoder) -> dict[str, Any]:
    """The event of a record value, as the JSON producer would have written it (money as
    float); an Avro record the registry cannot resolve fails the test."""
    if not is_framed(value):
        import json

        return json.loads(value)
    event = avro(value)
    assert event is not None, f"an Avro record the oracle cannot read: {value[:16]!r}"
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in event.items() if v is not None}


def events_in(values: Iterable[bytes], settings: Settings) -> list[dict[str, Any]]:
    """The events of record values, JSON and Avro alike."""
    avro = AvroDecoder(settings)
    return [event_of(value, avro) for value in values]
