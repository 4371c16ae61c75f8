"""The event contract as an Avro schema: ``include/schemas/ecommerce_event.avsc``.

That file is the one place for the events' field names and types.  :mod:`include.contract`
takes its required and optional fields from here, the validation of JSON events
(:mod:`spark_jobs.validation`) its type rules, the README its contract table, and the schema
registry the schema itself (registered by the provision_topics DAG under the input topic's
subject, ``<topic>-value``).

Each field may carry ``"since": N``, the schema version that added it; version 1 is the
file without the later fields.  :func:`schema_text` gives the schema as of any version (the
attribute removed), so every version ever registered can be rebuilt from the one file.

Avro records travel in the Confluent wire format: byte 0 is the magic byte 0, bytes 1-4 the
schema id (big-endian), then the Avro binary body (:func:`frame`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "ecommerce_event.avsc"
SINCE = "since"
MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class FieldSpec:
    """One field of the contract: ``kind`` is "string", "int", "decimal" or "timestamp";
    an ``optional`` field may be absent (null); ``since`` is the version that added it."""

    name: str
    kind: str
    optional: bool
    since: int
    doc: str
    precision: int = 0
    scale: int = 0

    @property
    def spark_type(self) -> str:
        """The Spark SQL type the field's value is read as."""
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return {"string": "string", "int": "int", "timestamp": "timestamp"}[self.kind]

    @property
    def json_form(self) -> str:
        """How the field is written in a JSON event, for the README's contract table."""
        return {
            "string": "text",
            "int": "integer number",
            "decimal": f"number (read as decimal({self.precision},{self.scale}))",
            "timestamp": "ISO-8601 text",
        }[self.kind]


@cache
def schema_document() -> dict[str, Any]:
    """The schema file as parsed JSON (the newest version, with the ``since`` marks)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def latest_version() -> int:
    """The newest schema version the file describes."""
    return max(int(f.get(SINCE, 1)) for f in schema_document()["fields"])


def schema_as_of(version: int | None = None) -> dict[str, Any]:
    """The schema as it was at ``version`` (default: the newest), without ``since`` marks."""
    version = latest_version() if version is None else version
    if not 1 <= version <= latest_version():
        raise ValueError(f"schema version must be 1..{latest_version()}, got {version}")
    document = dict(schema_document())
    document["fields"] = [
        {k: v for k, v in f.items() if k != SINCE}
        for f in schema_document()["fields"]
        if int(f.get(SINCE, 1)) <= version
    ]
    return document


def schema_text(version: int | None = None) -> str:
    """The schema of ``version`` (default: the newest) as compact JSON text: what is
    registered and what readers resolve records to."""
    return json.dumps(schema_as_of(version), separators=(",", ":"))


def _kind(avro_type: Any) -> tuple[str, int, int]:
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            return "decimal", int(avro_type["precision"]), int(avro_type.get("scale", 0))
        if logical in ("timestamp-micros", "timestamp-millis"):
            return "timestamp", 0, 0
        avro_type = avro_type["type"]
    if avro_type == "string":
        return "string", 0, 0
    if avro_type == "int":
        return "int", 0, 0
    raise ValueError(f"{SCHEMA_FILE.name}: the contract has no rule for Avro type {avro_type!r}")


@cache
def fields() -> tuple[FieldSpec, ...]:
    """The newest schema's fields in order; a union with null is an optional field."""
    specs = []
    for f in schema_document()["fields"]:
        avro_type = f["type"]
        optional = isinstance(avro_type, list)
        if optional:
            avro_type = next(t for t in avro_type if t != "null")
        kind, precision, scale = _kind(avro_type)
        specs.append(
            FieldSpec(
                f["name"], kind, optional, int(f.get(SINCE, 1)), f.get("doc", ""), precision, scale
            )
        )
    return tuple(specs)


def subject(topic: str) -> str:
    """The registry subject of a topic's record values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


def is_framed(value: bytes | None) -> bool:
    """Whether a record value claims the Confluent wire format: its first byte is the magic
    byte (a JSON text never starts with a zero byte)."""
    return value is not None and value[:1] == bytes([MAGIC_BYTE])


def frame(schema_id: int, body: bytes) -> bytes:
    """A record value in the Confluent wire format: magic byte, schema id, Avro body."""
    return HEADER.pack(MAGIC_BYTE, schema_id) + body


def contract_table() -> str:
    """The README's table of the contract's fields (Markdown), made from the schema file:
    `python -m include.event_schema` prints it."""
    rows = [
        "| field | Avro type | in JSON | required | since | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for spec in fields():
        avro = {
            "string": "string",
            "int": "int",
            "decimal": f"decimal({spec.precision},{spec.scale})",
            "timestamp": "timestamp-micros",
        }[spec.kind]
        required = "no (null)" if spec.optional else "yes"
        cells = (f"`{spec.name}`", avro, spec.json_form, required, str(spec.since), spec.doc)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(contract_table())
