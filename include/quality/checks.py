"""What "right" means for every sink table: the data quality checks, declared as data.

Each table has two kinds of checks, both validated by Great Expectations (GX Core 1.x):

* **row checks** run on the rows committed since the last validation (or on every row in a
  full run): keys not null, value ranges, window lengths, session and attribution bounds;
* **table checks** run on one row of table-level measures computed by
  :mod:`include.quality.measures` and :mod:`include.quality.reconciliation`: the schema
  against :data:`include.analytics.SCHEMAS`, duplicate keys (an exactly-once violation),
  freshness against the input topic, reconciliation of revenue against the events in
  Kafka, and the dead-letter rate.

Every check has a severity, as Delta Live Tables' expectations do: a failing ``fail`` check
fails the quality task; a failing ``warn`` check is logged and reported, and the task
succeeds.  Thresholds come from ``[quality]`` and ``[analytics]`` in config/platform.toml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from include.analytics import (
    CLICK_TO_PURCHASE,
    CONVERSION_FUNNEL,
    DEAD_LETTERS,
    HIGH_VALUE_USERS,
    OUTPUTS,
    REVENUE_BY_CATEGORY,
    USER_SESSIONS,
)
from include.settings import Settings

FAIL, WARN = "fail", "warn"
ROWS, TABLE = "rows", "table"

# Columns derived before validation (GX has no "difference of two columns" expectation).
WINDOW_LENGTH = "window_length_seconds"
SESSION_LENGTH = "session_length_seconds"

# Table-level measures: the columns of the one-row frame the table checks validate.
SCHEMA_DIFFERENCES = "schema_differences"
DUPLICATE_KEYS = "duplicate_keys"
MINUTES_BEHIND_INPUT = "minutes_behind_input"
RECONCILIATION_MISMATCHES = "revenue_windows_not_matching_kafka"
DEAD_LETTER_PERCENT = "dead_letter_percent"
TABLE_MEASURES = (
    SCHEMA_DIFFERENCES,
    DUPLICATE_KEYS,
    MINUTES_BEHIND_INPUT,
    RECONCILIATION_MISMATCHES,
    DEAD_LETTER_PERCENT,
)


@dataclass(frozen=True)
class CheckSpec:
    """One check: a plain-words name, a GX expectation, its severity and what it runs on."""

    name: str
    expectation: str  # class name in great_expectations.expectations
    kwargs: Mapping[str, Any]
    severity: str = FAIL
    on: str = ROWS

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the expectation reads (a table check: its measure), or none."""
        if "column" in self.kwargs:
            return (self.kwargs["column"],)
        if "column_list" in self.kwargs:
            return tuple(self.kwargs["column_list"])
        return ()


@dataclass(frozen=True)
class TableSuite:
    """The checks of one table, plus what the table-level measures need to know."""

    table: str
    checks: tuple[CheckSpec, ...]
    # Column holding the end of a row's event time (window_end, session_end, ...), used
    # for freshness; None: the table has no event-time end (the dead letters).
    freshness_column: str | None = None
    # How far behind the input a healthy table's newest row may be, in minutes.
    freshness_allowance_minutes: float | None = None
    derived: tuple[str, ...] = field(default_factory=tuple)

    def on(self, part: str) -> tuple[CheckSpec, ...]:
        """The checks that run on ``part``: :data:`ROWS` or :data:`TABLE`."""
        return tuple(check for check in self.checks if check.on == part)


def _not_null(*columns: str) -> list[CheckSpec]:
    return [
        CheckSpec(f"{c} is not null", "ExpectColumnValuesToNotBeNull", {"column": c})
        for c in columns
    ]


def _between(
    column: str, low: float | None = None, high: float | None = None, **options: Any
) -> CheckSpec:
    strict_low = options.get("strict_min", False)
    strict_high = options.get("strict_max", False)
    if low is not None and high is not None:
        opening, closing = "(" if strict_low else "[", ")" if strict_high else "]"
        name = f"{column} in {opening}{low:g}, {high:g}{closing}"
    elif low is not None:
        name = f"{column} {'>' if strict_low else '>='} {low:g}"
    else:
        name = f"{column} {'<' if strict_high else '<='} {high:g}"
    kwargs = {"column": column, "min_value": low, "max_value": high, **options}
    return CheckSpec(name, "ExpectColumnValuesToBeBetween", kwargs)


def _rate_checks(column: str) -> list[CheckSpec]:
    """A negative rate is a bug (fail).  Above 100 % is a warning: in a windowed funnel a
    user can buy in this window after adding to the cart in an earlier one."""
    above = _between(column, None, 100)
    return [_between(column, 0), replace(above, severity=WARN)]


def _window_length(seconds: int) -> CheckSpec:
    return CheckSpec(
        f"window_end - window_start = {seconds}s",
        "ExpectColumnValuesToBeInSet",
        {"column": WINDOW_LENGTH, "value_set": [seconds]},
    )


def _table_checks(
    freshness: str | None, freshness_severity: str, allowance: float | None
) -> list[CheckSpec]:
    checks = [
        CheckSpec(
            "columns and types match the table contract",
            "ExpectColumnValuesToBeBetween",
            {"column": SCHEMA_DIFFERENCES, "min_value": 0, "max_value": 0},
            on=TABLE,
        ),
        CheckSpec(
            "no key is written twice (exactly once)",
            "ExpectColumnValuesToBeBetween",
            {"column": DUPLICATE_KEYS, "min_value": 0, "max_value": 0},
            on=TABLE,
        ),
    ]
    if freshness is not None and allowance is not None:
        checks.append(
            CheckSpec(
                f"newest {freshness} at most {allowance:g} min behind the input",
                "ExpectColumnValuesToBeBetween",
                {"column": MINUTES_BEHIND_INPUT, "min_value": None, "max_value": allowance},
                severity=freshness_severity,
                on=TABLE,
            )
        )
    return checks


def table_suites(settings: Settings) -> dict[str, TableSuite]:
    """Every sink table's checks, with windows and thresholds from ``settings``."""
    a, q = settings.analytics, settings.quality
    watermark_min = a.watermark_seconds / 60

    def allowance(horizon_seconds: float) -> float:
        # A row appears once the watermark passes its end; add the configured slack.
        return round(q.freshness_minutes + horizon_seconds / 60 + watermark_min, 2)

    revenue_allowance = allowance(a.revenue_window_seconds)
    suites = [
        TableSuite(
            REVENUE_BY_CATEGORY.name,
            (
                *_not_null("window_start", "window_end", "category"),
                _between("total_revenue", 0),
                _between("purchase_count", 1),
                _between("avg_order_value", 0),
                _window_length(a.revenue_window_seconds),
                *_table_checks("window_end", FAIL, revenue_allowance),
                CheckSpec(
                    "revenue per window and category equals the purchases in Kafka",
                    "ExpectColumnValuesToBeBetween",
                    {"column": RECONCILIATION_MISMATCHES, "min_value": 0, "max_value": 0},
                    on=TABLE,
                ),
            ),
            "window_end",
            revenue_allowance,
            (WINDOW_LENGTH,),
        ),
        TableSuite(
            HIGH_VALUE_USERS.name,
            (
                *_not_null("window_start", "window_end", "user_id"),
                _between("total_spent", a.high_value_threshold, None, strict_min=True),
                _between("purchase_count", 1),
                _window_length(a.high_value_window_seconds),
                # High spenders are rare: a quiet spell is no fault, so freshness warns.
                *_table_checks("window_end", WARN, allowance(a.high_value_window_seconds)),
            ),
            "window_end",
            allowance(a.high_value_window_seconds),
            (WINDOW_LENGTH,),
        ),
        TableSuite(
            CONVERSION_FUNNEL.name,
            (
                *_not_null("window_start", "window_end"),
                _between("unique_visitors", 0),
                _between("cart_users", 0),
                _between("purchasers", 0),
                # Null (no visitors / no cart users) is allowed: GX skips nulls here.
                *_rate_checks("cart_conversion_rate"),
                *_rate_checks("purchase_conversion_rate"),
                _window_length(a.funnel_window_seconds),
                *_table_checks("window_end", FAIL, allowance(a.funnel_window_seconds)),
            ),
            "window_end",
            allowance(a.funnel_window_seconds),
            (WINDOW_LENGTH,),
        ),
        TableSuite(
            USER_SESSIONS.name,
            (
                *_not_null("user_id", "session_start", "session_end"),
                CheckSpec(
                    "session_end >= session_start",
                    "ExpectColumnValuesToBeBetween",
                    {"column": SESSION_LENGTH, "min_value": 0},
                ),
                _between("duration_seconds", 0),
                _between("event_count", 1),
                _between("total_revenue", 0),
                _between("unique_products", 0),
                # A session closes only after the gap: freshness trails by it, and warns.
                *_table_checks("session_end", WARN, allowance(a.session_gap_seconds)),
            ),
            "session_end",
            allowance(a.session_gap_seconds),
            (SESSION_LENGTH,),
        ),
        TableSuite(
            CLICK_TO_PURCHASE.name,
            (
                *_not_null(
                    "user_id",
                    "product_id",
                    "click_event_id",
                    "purchase_event_id",
                    "click_time",
                    "purchase_time",
                ),
                _between("time_to_purchase_seconds", 0, a.attribution_seconds, strict_min=True),
                _between("revenue", 0),
                *_table_checks("purchase_time", WARN, allowance(0)),
            ),
            "purchase_time",
            allowance(0),
        ),
        TableSuite(
            DEAD_LETTERS.name,
            (
                *_not_null("reason", "source_topic", "source_partition", "source_offset"),
                *_table_checks(None, WARN, None),
                CheckSpec(
                    f"dead letters at most {q.max_dead_letter_percent:g}% of the input",
                    "ExpectColumnValuesToBeBetween",
                    {
                        "column": DEAD_LETTER_PERCENT,
                        "min_value": 0,
                        "max_value": q.max_dead_letter_percent,
                    },
                    severity=WARN,
                    on=TABLE,
                ),
            ),
        ),
    ]
    own = {suite.table: suite for suite in suites}
    # An output declared without checks of its own still gets the contract's: its keys
    # present, the declared schema, no key written twice.
    return {
        output.name: own.get(output.name)
        or TableSuite(output.name, (*_not_null(*output.keys), *_table_checks(None, WARN, None)))
        for output in OUTPUTS
    }
