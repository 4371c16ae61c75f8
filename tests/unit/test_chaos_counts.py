"""The fault campaign's counting (tests/chaos/counting.py): each kind of damage is counted once."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from tests.chaos.counting import compare_rows

ORDER = ["window_start", "category"]


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*ORDER, "revenue", "products"])


EXPECTED = frame(
    [
        ("10:00", "Books", Decimal("10.50"), ["a", "b"]),
        ("10:00", "Toys", Decimal("3.00"), ["c"]),
        ("10:01", "Books", Decimal("7.25"), []),
    ]
)


def test_an_exact_copy_counts_nothing_float_noise_and_types_aside() -> None:
    got = frame(
        [
            ("10:01", "Books", 7.25, []),
            ("10:00", "Books", 10.5 + 1e-12, ("a", "b")),
            ("10:00", "Toys", Decimal("3.0"), ["c"]),
        ]
    )
    counted = compare_rows("t", EXPECTED, got, ORDER)
    assert (counted.expected, counted.written) == (3, 3)
    assert (counted.lost, counted.duplicated, counted.wrong, counted.unexplained) == (0, 0, 0, 0)


def test_lost_duplicated_wrong_and_unexplained_rows_are_each_counted() -> None:
    got = frame(
        [
            ("10:00", "Books", Decimal("10.50"), ["a", "b"]),
            ("10:00", "Books", Decimal("10.50"), ["a", "b"]),  # written twice
            ("10:00", "Toys", Decimal("3.01"), ["c"]),  # a cent off
            ("10:02", "Games", Decimal("1.00"), []),  # no event explains it
        ]
    )  # ("10:01", "Books") is missing
    counted = compare_rows("t", EXPECTED, got, ORDER)
    assert (counted.lost, counted.duplicated, counted.wrong, counted.unexplained) == (1, 1, 1, 1)
    assert counted.written == 4


def test_a_different_list_is_a_wrong_row() -> None:
    got = frame(
        [
            ("10:00", "Books", Decimal("10.50"), ["a"]),
            ("10:00", "Toys", Decimal("3.00"), ["c"]),
            ("10:01", "Books", Decimal("7.25"), []),
        ]
    )
    assert compare_rows("t", EXPECTED, got, ORDER).wrong == 1


def test_float_columns_are_compared_with_a_tolerance_and_nan_equals_nan() -> None:
    expected = pd.DataFrame({"k": [1, 2, 3], "share": [0.5, float("nan"), 2.0]})
    got = pd.DataFrame({"k": [3, 2, 1], "share": [2.01, float("nan"), 0.5 + 1e-12]})
    counted = compare_rows("t", expected, got, ["k"])
    assert (counted.lost, counted.duplicated, counted.wrong, counted.unexplained) == (0, 0, 1, 0)
