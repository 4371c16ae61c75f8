"""The event schema in the schema registry: register it, look up its id, list its versions.

Speaks the Confluent-compatible REST API (Apicurio Registry's `/apis/ccompat/v7`, or a
Confluent Schema Registry of your own: ``[registry] url``).  The subject is the input topic's
value subject (``<topic>-value``); its compatibility rule is ``[registry] compatibility``.
A schema the rule refuses raises :class:`SchemaRefused` with what breaks, in words, before a
single record is written with it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from include.contract import parse_utc
from include.event_schema import (
    HEADER,
    fields,
    frame,
    is_framed,
    latest_version,
    schema_text,
    subject,
)
from include.settings import Settings

TIMEOUT_SECONDS = 10
# What each rule asks of a new version, in words (Confluent's definitions).
RULE_MEANING = {
    "BACKWARD": "readers of the new version must read the records of the latest one",
    "BACKWARD_TRANSITIVE": "readers of the new version must read the records of every older one",
    "FORWARD": "readers of the latest version must read the new version's records",
    "FORWARD_TRANSITIVE": "readers of every older version must read the new version's records",
    "FULL": "the new and the latest version must read each other's records",
    "FULL_TRANSITIVE": "the new and every older version must read each other's records",
    "NONE": "no check",
}


class RegistryError(RuntimeError):
    """The registry did not answer, or answered something unexpected."""


class SchemaRefused(RegistryError):
    """The registry's compatibility rule refused a new version of the schema."""


class SchemaNotRegistered(RegistryError):
    """A schema the registry does not hold under the subject."""


@dataclass(frozen=True)
class Registered:
    """A schema version under a subject, and its global id (what Avro records carry)."""

    subject: str
    version: int
    schema_id: int


def event_subject(settings: Settings) -> str:
    """The subject of the input topic's record values."""
    return subject(settings.kafka.input_topic)


def _call(settings: Settings, method: str, path: str, **kwargs: Any) -> requests.Response:
    url = f"{settings.registry_url}{path}"
    try:
        return requests.request(method, url, timeout=TIMEOUT_SECONDS, **kwargs)
    except requests.RequestException as exc:
        raise RegistryError(
            f"the schema registry at {settings.registry_url} did not answer "
            f"({exc.__class__.__name__}: {exc}). Is it running? `make status` shows it."
        ) from exc


def _not_found(answer: requests.Response, settings: Settings) -> bool:
    """Whether the registry said "not found" (a 404 with its error code, 404xx); a 404
    without one is a URL that names no registry API, an error saying so."""
    if answer.status_code != 404:
        return False
    try:
        code = int(answer.json().get("error_code", 0))
    except (ValueError, AttributeError):
        code = 0
    if code // 100 == 404:
        return True
    raise RegistryError(
        f"{answer.url} answered 404 without a schema registry's error code: is [registry] url "
        f"({settings.registry_url}) the Confluent-compatible API root (Apicurio: "
        "http://host:port/apis/ccompat/v7)?"
    )


def _json(answer: requests.Response, doing: str) -> Any:
    if not answer.ok:
        raise RegistryError(
            f"the schema registry answered {answer.status_code} to {doing}: {answer.text[:500]}"
        )
    return answer.json()


def _fields(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in document.get("fields", [])}


def _type_text(avro_type: Any) -> str:
    return json.dumps(avro_type, separators=(",", ":"))


def what_breaks(latest: dict[str, Any], new: dict[str, Any], rule: str) -> list[str]:
    """The changes from ``latest`` to ``new`` that ``rule`` forbids, in words: a field added
    without a default (backward), a field removed without a default (forward), a retyped field
    (both).  Empty when none of these is found (the registry may still know of another)."""
    old_fields, new_fields = _fields(latest), _fields(new)
    backward = rule.startswith(("BACKWARD", "FULL"))
    forward = rule.startswith(("FORWARD", "FULL"))
    problems = []
    for name, field in new_fields.items():
        if name not in old_fields:
            if backward and "default" not in field:
                problems.append(
                    f"field {name!r} is added without a default: records written before it "
                    'have no value for it (add `"default": null` and make the type '
                    '["null", ...], or give another default)'
                )
        elif _type_text(field["type"]) != _type_text(old_fields[name]["type"]):
            problems.append(
                f"field {name!r} changes type from {_type_text(old_fields[name]['type'])} to "
                f"{_type_text(field['type'])}: records of one version cannot be read as the other"
            )
    for name, field in old_fields.items():
        if name not in new_fields and forward and "default" not in field:
            problems.append(
                f"field {name!r} is removed and had no default: readers of the older version "
                "cannot read the new records"
            )
    return problems


def subject_versions(settings: Settings) -> list[Registered]:
    """Every version of the event subject, oldest first (empty when none is registered)."""
    name = event_subject(settings)
    answer = _call(settings, "GET", f"/subjects/{name}/versions")
    if _not_found(answer, settings):
        return []
    versions = _json(answer, f"listing the versions of {name}")
    found = []
    for version in versions:
        detail = _json(
            _call(settings, "GET", f"/subjects/{name}/versions/{version}"),
            f"reading version {version} of {name}",
        )
        found.append(Registered(name, int(detail["version"]), int(detail["id"])))
    return found


def versions_in_words(settings: Settings) -> str:
    """The event subject's versions and ids, where, and its rule; or why they are not known
    (what `make status` and the health page say)."""
    try:
        held = subject_versions(settings)
    except RegistryError as exc:
        return str(exc)
    versions = ", ".join(f"version {r.version} (id {r.schema_id})" for r in held)
    return (
        f"{versions or 'no version registered yet (provision_topics registers it)'} of "
        f"{event_subject(settings)} at {settings.registry_url}; new versions must be "
        f"{settings.registry.compatibility} compatible"
    )


def latest_schema(settings: Settings) -> dict[str, Any] | None:
    """The newest registered version of the event schema (parsed), None when there is none."""
    name = event_subject(settings)
    answer = _call(settings, "GET", f"/subjects/{name}/versions/latest")
    if _not_found(answer, settings):
        return None
    return json.loads(_json(answer, f"reading the latest version of {name}")["schema"])


def lookup(settings: Settings, schema: str) -> Registered:
    """The version and id under which the event subject holds ``schema`` (JSON text);
    :class:`SchemaNotRegistered` when it does not."""
    name = event_subject(settings)
    answer = _call(settings, "POST", f"/subjects/{name}", json={"schema": schema})
    if _not_found(answer, settings):
        raise SchemaNotRegistered(
            f"the schema registry holds no such version of {name}: register it first (the "
            "provision_topics DAG registers include/schemas/ecommerce_event.avsc)"
        )
    found = _json(answer, f"looking up the schema under {name}")
    return Registered(name, int(found["version"]), int(found["id"]))


def set_rule(settings: Settings) -> str:
    """Give the event subject the configured compatibility rule; the rule."""
    name, rule = event_subject(settings), settings.registry.compatibility
    _json(
        _call(settings, "PUT", f"/config/{name}", json={"compatibility": rule}),
        f"setting the compatibility rule of {name} to {rule}",
    )
    return rule


def register_history(settings: Settings) -> Registered:
    """The schema file's versions the subject does not hold yet, oldest first, after the
    newest one it holds: on a fresh registry, versions 1..N under the file's own numbers.
    The newest version's registration (:class:`SchemaRefused` when the rule refuses one)."""
    newest_held = 0
    for version in range(latest_version(), 0, -1):
        try:
            lookup(settings, schema_text(version))
        except SchemaNotRegistered:
            continue
        newest_held = version
        break
    missing = range(newest_held + 1, latest_version() + 1)
    for version in missing:
        register(settings, schema_text(version))  # each sets the rule first
    if not missing:
        set_rule(settings)  # a changed [registry] compatibility still applies
    return lookup(settings, schema_text())


def register(settings: Settings, schema: str | None = None) -> Registered:
    """Register ``schema`` (default: the contract's newest, include/schemas) under the event
    subject with the configured compatibility rule; the version it is (a schema already held
    keeps its version).  :class:`SchemaRefused` says what breaks when the rule refuses it."""
    schema = schema or schema_text()
    name = event_subject(settings)
    rule = set_rule(settings)
    body = {"schema": schema, "schemaType": "AVRO"}
    answer = _call(settings, "POST", f"/subjects/{name}/versions", json=body)
    if answer.status_code == 409:
        latest = latest_schema(settings) or {}
        problems = what_breaks(latest, json.loads(schema), rule) or [answer.text[:500]]
        raise SchemaRefused(
            f"the schema registry refused this version of {name} under its {rule} rule "
            f"({RULE_MEANING[rule]}): " + "; ".join(problems) + ". Nothing was registered."
        )
    _json(answer, f"registering a version of {name}")
    return lookup(settings, schema)


class AvroWriter:
    """Events to Avro record values of ``schema`` (JSON text) in the Confluent wire format,
    framed with ``schema_id``; zone-less event times read in ``naive_zone``."""

    def __init__(self, schema: str, schema_id: int, naive_zone: str = "UTC") -> None:
        import fastavro

        self.schema = schema
        self.schema_id = schema_id
        self._parsed = fastavro.parse_schema(json.loads(schema))
        self._naive_zone = naive_zone
        self._write = fastavro.schemaless_writer

    def __call__(self, event: dict[str, Any]) -> bytes:
        """The record value of ``event`` (a generator's JSON-shaped event)."""
        body = io.BytesIO()
        self._write(body, self._parsed, to_avro_record(event, self._naive_zone))
        return frame(self.schema_id, body.getvalue())


class AvroEncoder(AvroWriter):
    """An :class:`AvroWriter` of a schema version the registry holds, under its id.  Made
    only for a schema the registry holds (:func:`lookup`): a producer refused here has sent
    nothing."""

    def __init__(self, settings: Settings, schema: str | None = None) -> None:
        schema = schema or schema_text()
        self.registered = lookup(settings, schema)
        super().__init__(schema, self.registered.schema_id, settings.events.naive_timezone)


def to_avro_record(event: dict[str, Any], naive_zone: str = "UTC") -> dict[str, Any]:
    """An event of the generators (JSON-shaped: ISO text time, float or Decimal money) as
    the values Avro writes: the event time as an aware datetime (a zone-less text read in
    ``naive_zone``), money as Decimal to its scale, absent optional fields as None."""
    record: dict[str, Any] = {}
    for spec in fields():
        value = event.get(spec.name)
        if spec.kind == "timestamp":
            value = parse_utc(value, naive_zone)
        elif spec.kind == "decimal" and value is not None:
            value = Decimal(str(value)).quantize(Decimal(1).scaleb(-spec.scale))
        record[spec.name] = value
    return record


def writer_schema(settings: Settings, schema_id: int) -> dict[str, Any] | None:
    """The schema registered under ``schema_id`` (parsed JSON), None when the registry holds
    no such id."""
    answer = _call(settings, "GET", f"/schemas/ids/{schema_id}")
    if _not_found(answer, settings):
        return None
    return json.loads(_json(answer, f"reading schema id {schema_id}")["schema"])


class AvroDecoder:
    """Avro record values (Confluent wire format) back to JSON-shaped events of the newest
    schema, in Python (fastavro): what the quality checks read the input topic with, apart
    from the Spark apps' own decoder.  Writer schemas are fetched by id once."""

    def __init__(self, settings: Settings) -> None:
        import fastavro

        self.settings = settings
        self._fastavro = fastavro
        self._reader = fastavro.parse_schema(json.loads(schema_text()))
        self._writers: dict[int, Any] = {}

    def __call__(self, value: bytes) -> dict[str, Any] | None:
        """The event of an Avro record value: times as ISO-8601 text, money as Decimal;
        None when it is no readable Avro record of a registered schema."""
        if len(value) < HEADER.size or not is_framed(value):
            return None
        _, schema_id = HEADER.unpack_from(value)
        if schema_id not in self._writers:
            found = writer_schema(self.settings, schema_id)
            self._writers[schema_id] = found and self._fastavro.parse_schema(found)
        writer = self._writers[schema_id]
        if writer is None:
            return None
        body = io.BytesIO(value[HEADER.size :])
        try:
            record = self._fastavro.schemaless_reader(body, writer, self._reader)
        except Exception:
            return None
        if body.read(1):
            return None  # bytes after the record: a corrupt body
        assert isinstance(record, dict)
        return {
            key: value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in record.items()
        }
