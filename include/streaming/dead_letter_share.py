"""How much of the recent input became dead letters, and why: the loud warning of `make status`
and the health page when most of it does (a producer sending a new field's type, a replay
older than the timestamp bound: every event refused while the tables simply stop growing).

The share comes from the streaming progress records (no broker needed): the dead-letter
output's rows per batch against the input topic's offsets the batch read, over the last
``[quality] dead_letter_alarm_minutes``.  The reasons come from the newest records of the
dead-letter topic.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from include.analytics import DEAD_LETTERS
from include.settings import Settings
from include.streaming.progress import DEFAULT_TAIL_BYTES, read_progress

# How many of the newest dead letters the reasons are counted over.
REASON_SAMPLE = 300
# How long a page or `make status` waits for them: a broker that does not answer would
# otherwise hold either for half a minute (kafka-python's metadata wait).
REASON_WAIT_SECONDS = 3.0


@dataclass(frozen=True)
class DeadLetterShare:
    """Input records the streaming app read in the last ``minutes`` and how many of them it
    dead-lettered; ``reasons``: the newest dead letters' reasons, most common first."""

    minutes: int
    input_records: int
    dead_letters: int
    alarm_percent: float
    reasons: list[tuple[str, int]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        """Dead letters as a percentage of the input read (0 when nothing was read)."""
        return 100.0 * self.dead_letters / self.input_records if self.input_records else 0.0

    @property
    def alarming(self) -> bool:
        """Whether the share is above ``[quality] dead_letter_alarm_percent``."""
        return self.input_records > 0 and self.percent > self.alarm_percent

    def sentence(self) -> str:
        """The warning in words, with the reasons when known."""
        text = (
            f"{self.dead_letters:,} of the {self.input_records:,} input records of the last "
            f"{self.minutes} minutes ({self.percent:.0f}%) went to the dead letters, not the "
            "tables"
        )
        if self.reasons:
            text += "; newest reasons: " + ", ".join(f"{r} ({n})" for r, n in self.reasons[:3])
        return text + ". The dead_letters table and topic hold every record with its reason."


def _input_ends(record: dict[str, Any], topic: str) -> dict[str, int] | None:
    for source in record.get("sources") or []:
        ends = (source.get("endOffset") or {}).get(topic)
        if ends is not None:
            return {p: int(o) for p, o in ends.items()}
    return None


def share_of(records: list[dict[str, Any]], topic: str, since: datetime) -> tuple[int, int]:
    """(input records read, dead letters written) by the batches that started at ``since`` or
    later, from the dead-letter output's progress records in file order.  A batch's input is
    the growth of the input topic's end offsets since the batch before it; the first batch
    of the file, whose start is unknown, is left out."""
    read = dead = 0
    previous: dict[str, int] | None = None
    for record in records:
        ends = _input_ends(record, topic)
        started = datetime.fromisoformat(str(record.get("timestamp", "")).replace("Z", "+00:00"))
        if ends is not None and previous is not None and started >= since:
            read += sum(max(0, o - previous.get(p, o)) for p, o in ends.items())
            dead += int(record.get("numOutputRows") or 0)
        previous = ends if ends is not None else previous
    return read, dead


def latest_reasons(settings: Settings, limit: int = REASON_SAMPLE) -> list[tuple[str, int]]:
    """The reasons of the newest ``limit`` records of the dead-letter topic, most common first
    (empty when the topic cannot be read)."""
    import json

    from kafka import TopicPartition

    from include.kafka.client import consumer

    topic = settings.kafka.dead_letter_topic
    try:
        reader = consumer(settings.bootstrap_servers, consumer_timeout_ms=1000)
    except Exception:
        return []
    try:
        parts = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
        if not parts:
            return []
        reader.assign(parts)
        ends, starts = reader.end_offsets(parts), reader.beginning_offsets(parts)
        each = max(1, limit // len(parts))
        for tp in parts:
            reader.seek(tp, max(starts[tp], ends[tp] - each))
        reasons: Counter[str] = Counter()
        for _ in range(5):
            for batch in reader.poll(timeout_ms=1000).values():
                for record in batch:
                    try:
                        reasons[str(json.loads(record.value)["reason"])] += 1
                    except (ValueError, KeyError, TypeError):
                        continue
            if all(reader.position(tp) >= ends[tp] for tp in parts):
                break
        return reasons.most_common()
    except Exception:
        return []
    finally:
        reader.close()


def latest_reasons_soon(
    settings: Settings, wait: float = REASON_WAIT_SECONDS
) -> list[tuple[str, int]]:
    """:func:`latest_reasons`, or none when the broker has not answered within ``wait``
    seconds (the read goes on in a daemon thread that nothing waits for)."""
    found: list[list[tuple[str, int]]] = []
    reader = threading.Thread(
        target=lambda: found.append(latest_reasons(settings)),
        name="dead-letter-reasons",
        daemon=True,
    )
    reader.start()
    reader.join(wait)
    return found[0] if found else []


def recent_dead_letters(settings: Settings, now: datetime | None = None) -> DeadLetterShare:
    """The share of the last ``[quality] dead_letter_alarm_minutes``; the reasons are read
    from the dead-letter topic only when the share is alarming."""
    quality = settings.quality
    since = (now or datetime.now(UTC)) - timedelta(minutes=quality.dead_letter_alarm_minutes)
    records = [
        r
        for r in read_progress(settings.paths.metrics_dir, DEFAULT_TAIL_BYTES)
        if r.get("name") == DEAD_LETTERS.name
    ]
    read, dead = share_of(records, settings.kafka.input_topic, since)
    share = DeadLetterShare(
        quality.dead_letter_alarm_minutes, read, dead, quality.dead_letter_alarm_percent
    )
    if share.alarming:
        share = DeadLetterShare(
            share.minutes, read, dead, share.alarm_percent, latest_reasons_soon(settings)
        )
    return share
