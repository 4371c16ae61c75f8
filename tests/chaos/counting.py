"""The campaign's counts: every row the platform wrote, against the independent oracle.

Against the oracle (tests/oracle.py) over the events read back from the input topic: rows
lost, rows duplicated, rows with wrong values, rows no event explains; and, for the
malformed records, which became exactly one dead letter with their reason, in the
dead-letter topic and in its table.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from include.analytics import DEAD_LETTERS
from include.kafka.client import read_to_end
from include.settings import Settings
from tests.integration.dataset import ORACLES, emitted, expected_of, normalise
from tests.integration.dataset import read_table as read_sink


def _same(a: object, b: object) -> bool:
    if isinstance(a, list | tuple | np.ndarray) or isinstance(b, list | tuple | np.ndarray):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None or (pd.isna(a) and pd.isna(b)):
        return (a is None or pd.isna(a)) and (b is None or pd.isna(b))
    if isinstance(a, float | Decimal | np.floating) or isinstance(b, float | Decimal | np.floating):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def _keys(frame: pd.DataFrame, order: list[str]) -> pd.Series:
    """One string per row naming its key, the same for equal keys of either side."""
    keys = pd.Series("", index=frame.index)
    for column in order:
        keys = keys + "\x1f" + frame[column].astype(str)
    return keys


def _differs(left: pd.Series, right: pd.Series) -> np.ndarray:
    """Per row: do the two values differ beyond float noise?"""
    if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
        a, b = left.to_numpy(dtype=float), right.to_numpy(dtype=float)
        return ~np.isclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True)
    return np.array([not _same(a, b) for a, b in zip(left, right, strict=True)], dtype=bool)


@dataclass
class TableCount:
    table: str
    expected: int
    written: int
    lost: int
    duplicated: int
    wrong: int
    unexplained: int


def count_table(analytic: str, events: list[dict], watermark: datetime, settings: Settings):
    """The sink table against the oracle's rows that the watermark has closed."""
    _, order = ORACLES[analytic]
    expected = emitted(analytic, expected_of(analytic, events, settings), watermark, settings)
    expected = normalise(expected, order)
    got = read_sink(settings.paths.table_path(analytic))
    got = normalise(got, order) if len(got) else pd.DataFrame(columns=expected.columns)
    return compare_rows(analytic, expected, got, order)


def compare_rows(
    table: str, expected: pd.DataFrame, got: pd.DataFrame, order: list[str]
) -> TableCount:
    """Count, by key (`order`): expected rows missing, keys written more than once, rows
    whose values differ, and rows with a key the oracle does not have."""
    columns = [c for c in expected.columns if c not in order]
    want = expected.assign(_key=_keys(expected, order)).drop_duplicates("_key")
    first = got.assign(_key=_keys(got, order)).drop_duplicates("_key")
    both = want.merge(first, on="_key", how="inner", suffixes=("", "_got"))
    wrong = np.zeros(len(both), dtype=bool)
    for column in columns:
        wrong |= _differs(both[column], both[f"{column}_got"])
    return TableCount(
        table=table,
        expected=len(want),
        written=len(got),
        lost=int((~want["_key"].isin(first["_key"])).sum()),
        duplicated=len(got) - len(first),
        wrong=int(wrong.sum()),
        unexplained=int((~first["_key"].isin(want["_key"])).sum()),
    )


@dataclass
class DeadLetterCount:
    malformed_sent: int
    exactly_once: int
    missing: int
    duplicated: int
    wrong_reason: int
    not_malformed: int  # dead letters of records that were not malformed


def count_dead_letters(
    settings: Settings, malformed: dict[tuple[int, int], tuple[bytes, str]]
) -> DeadLetterCount:
    """Each malformed record: one message in the dead-letter topic and one table row, both
    with its reason."""
    topic = read_to_end(settings.bootstrap_servers, settings.kafka.dead_letter_topic)
    letters = [json.loads(r.value) for r in topic]
    in_topic = Counter((d["source_partition"], d["source_offset"]) for d in letters)
    reasons = {(d["source_partition"], d["source_offset"]): d["reason"] for d in letters}
    table = read_sink(settings.paths.table_path(DEAD_LETTERS.name))
    in_table = Counter(
        zip(table.get("source_partition", []), table.get("source_offset", []), strict=True)
    )
    once = missing = duplicated = wrong = 0
    for where, (_, reason) in malformed.items():
        counts = (in_topic[where], in_table[where])
        if 0 in counts:
            missing += 1
        elif counts != (1, 1):
            duplicated += 1
        elif reasons[where] != reason:
            wrong += 1
        else:
            once += 1
    others = set(in_topic) | set(in_table)
    return DeadLetterCount(
        malformed_sent=len(malformed),
        exactly_once=once,
        missing=missing,
        duplicated=duplicated,
        wrong_reason=wrong,
        not_malformed=len(others - set(malformed)),
    )
