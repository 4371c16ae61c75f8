"""The event contract as an Avro schema: its versions, the fields the rest of the code takes
from it, what a compatibility rule refuses in words, and the README's table of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from include.contract import OPTIONAL_FIELDS, REQUIRED_FIELDS
from include.event_schema import (
    SCHEMA_FILE,
    contract_table,
    frame,
    latest_version,
    schema_as_of,
    schema_text,
)
from include.registry import to_avro_record, what_breaks
from include.settings.base import PROJECT_ROOT
from include.streaming.dead_letter_share import DeadLetterShare, share_of


def names(version: int) -> list[str]:
    return [f["name"] for f in schema_as_of(version)["fields"]]


def test_each_version_is_the_file_without_the_fields_added_later() -> None:
    document = json.loads(SCHEMA_FILE.read_text())
    added = {f["name"]: f.get("since", 1) for f in document["fields"]}
    assert latest_version() == max(added.values()) == 2
    for version in (1, 2):
        assert names(version) == [n for n, since in added.items() if since <= version]
    assert "coupon_code" not in names(1) and "coupon_code" in names(2)
    # The mark is the repo's bookkeeping, not part of what is registered.
    assert '"since"' not in schema_text(1) and '"since"' not in schema_text()


def test_the_contract_takes_its_fields_from_the_schema() -> None:
    document = json.loads(SCHEMA_FILE.read_text())
    nullable = {f["name"] for f in document["fields"] if isinstance(f["type"], list)}
    assert list(REQUIRED_FIELDS) + list(OPTIONAL_FIELDS) == [f["name"] for f in document["fields"]]
    assert set(OPTIONAL_FIELDS) == nullable == {"revenue", "coupon_code"}


def test_an_event_becomes_the_values_avro_writes() -> None:
    event = {"timestamp": "2026-01-01T12:00:30.5", "price": 19.9, "quantity": 2, "revenue": None}
    record = to_avro_record(event, "Asia/Kolkata")
    # zone-less text: the wall clock of the zone (UTC+5:30)
    assert record["timestamp"] == datetime(2026, 1, 1, 6, 30, 30, 500_000, tzinfo=UTC)
    assert str(record["price"]) == "19.90" and record["revenue"] is None
    assert record["coupon_code"] is None and record["quantity"] == 2
    assert frame(258, b"body") == b"\x00\x00\x00\x01\x02body"


def test_what_breaks_names_each_change_a_rule_forbids() -> None:
    old = schema_as_of(2)
    new = json.loads(json.dumps(old))
    new["fields"] = [f for f in new["fields"] if f["name"] != "country"]
    for field in new["fields"]:
        if field["name"] == "quantity":
            field["type"] = "long"
    new["fields"].append({"name": "channel", "type": "string"})
    new["fields"].append({"name": "currency", "type": "string", "default": "EUR"})
    backward = what_breaks(old, new, "BACKWARD")
    assert len(backward) == 2
    assert "'quantity' changes type" in backward[0] and "'channel'" in backward[1]
    forward = what_breaks(old, new, "FORWARD")
    assert any("'country' is removed" in p for p in forward)
    assert not any("'channel'" in p for p in forward)
    assert len(what_breaks(old, new, "FULL")) == 3
    # Adding an optional field with a default is what BACKWARD allows.
    assert what_breaks(schema_as_of(1), schema_as_of(2), "BACKWARD") == []


def test_the_readme_shows_the_contract_table_of_the_schema() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert contract_table() in readme, "run `python -m include.event_schema` and paste its table"


def progress(at: datetime, ends: dict[str, int], dead: int) -> dict:
    return {
        "name": "dead_letters",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "sources": [{"endOffset": {"in": ends, "control": {"0": 9}}}],
        "numOutputRows": dead,
    }


def test_the_dead_letter_share_counts_the_input_each_batch_read() -> None:
    t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
    records = [
        progress(t0, {"0": 100, "1": 100}, 7),  # before the window: only its end offsets count
        progress(t0 + timedelta(minutes=6), {"0": 150, "1": 130}, 60),
        progress(t0 + timedelta(minutes=7), {"0": 170, "1": 130}, 20),
    ]
    assert share_of(records, "in", t0 + timedelta(minutes=5)) == (100, 80)
    share = DeadLetterShare(10, 100, 80, 50.0, [("timestamp_too_old:604800s", 80)])
    assert share.alarming and round(share.percent) == 80
    assert "80 of the 100 input records" in share.sentence()
    assert "timestamp_too_old:604800s (80)" in share.sentence()
    assert not DeadLetterShare(10, 100, 50, 50.0).alarming
    assert not DeadLetterShare(10, 0, 0, 50.0).alarming
