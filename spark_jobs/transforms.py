"""The analytics (docs/DESIGN.md, section 4): pure DataFrame transforms from valid events.

Every function here builds DataFrames (or their columns) from DataFrames: no reads, no
writes, no session creation, so the unit tests run them on small static frames, the streaming app
composes them on Kafka streams and the backfill on a batch read of the same topic.  An
analytic's transform has the analytic's name (``include.analytics``); its rows have the
columns of the analytic's table.  Everything is built from Spark SQL built-in functions;
there is no Python UDF, so no Python worker sits in the hot path.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from include.analytics import (
    CLICK_TO_PURCHASE,
    CONVERSION_FUNNEL,
    HIGH_VALUE_USERS,
    REVENUE_BY_CATEGORY,
    USER_SESSIONS,
    Analytic,
)
from include.contract import PURCHASE
from include.settings.sections import AnalyticsSettings
from spark_jobs.validation import MONEY_TYPE

# Conversion rates in percent, exact to 0.01 (100.00 at most).
RATE_TYPE = "decimal(5,2)"


def with_watermark(events: DataFrame, watermark_seconds: int) -> DataFrame:
    """Events with the event-time watermark ``watermark_seconds`` behind the newest event time
    seen.  A stream defines it once, on everything that moves event time (Spark refuses a
    second definition on a branch); every stateful step after it carries it."""
    return events.withWatermark("event_time", f"{watermark_seconds} seconds")


def deduplicate(events: DataFrame) -> DataFrame:
    """Count each ``event_id`` once.

    Streaming: state per event_id lives until the watermark (set before, by
    :func:`with_watermark`) passes it, so a duplicate that arrives within the watermark delay
    of event time is dropped.  Spark 4.0 refuses ``dropDuplicatesWithinWatermark`` on a static
    frame, so a batch frame gets a plain ``dropDuplicates``.
    """
    if events.isStreaming:
        return events.dropDuplicatesWithinWatermark(["event_id"])
    return events.dropDuplicates(["event_id"])


def _sliding_window(length_seconds: int, slide_seconds: int) -> Column:
    """Event-time windows [start, end) of the given length, one starting every slide."""
    return F.window("event_time", f"{length_seconds} seconds", f"{slide_seconds} seconds")


def _purchases_per_window(events: DataFrame, window: Column, key: str, *more: Column) -> DataFrame:
    """Purchases per window and ``key``: ``_total`` revenue, ``purchase_count`` and ``more``."""
    return (
        events.filter(F.col("event_type") == PURCHASE)
        .groupBy(window.alias("window"), F.col(key))
        .agg(F.sum("revenue").alias("_total"), F.count(F.lit(1)).alias("purchase_count"), *more)
    )


def revenue_by_category(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Purchases per sliding event-time window [start, end) and category.

    Columns: its table's (``include.analytics``).  On a stream the input must already carry a
    watermark on ``event_time`` (see :func:`deduplicate`) so append mode can emit a window
    once it is closed; on a static frame every window is computed at once.
    """
    window = _sliding_window(analytics.revenue_window_seconds, analytics.revenue_slide_seconds)
    totals = _purchases_per_window(events, window, "category")
    return totals.select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        F.col("category"),
        F.col("_total").cast(MONEY_TYPE).alias("total_revenue"),
        F.col("purchase_count"),
        # round() on a decimal is HALF_UP, the way a shop rounds (include.generators.money).
        F.round(F.col("_total") / F.col("purchase_count"), 2)
        .cast(MONEY_TYPE)
        .alias("avg_order_value"),
    )


def high_value_users(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Per sliding window and user: spend, purchases and products bought; big spenders only.

    Columns: its table's (``include.analytics``).  ``products_purchased`` is the
    sorted set of product names (what the tutorial reports), ``product_ids_purchased`` that
    of their ids, so a row is the same whatever order events arrived in.  Only
    rows with ``total_spent`` above ``analytics.high_value_threshold`` are kept: filtering
    the finished aggregate keeps the sum exact.
    """
    window = _sliding_window(
        analytics.high_value_window_seconds, analytics.high_value_slide_seconds
    )
    spend = _purchases_per_window(
        events,
        window,
        "user_id",
        F.array_sort(F.collect_set("product_name")).alias("products_purchased"),
        F.array_sort(F.collect_set("product_id")).alias("product_ids_purchased"),
    )
    return spend.filter(F.col("_total") > F.lit(analytics.high_value_threshold)).select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        F.col("user_id"),
        F.col("_total").cast(MONEY_TYPE).alias("total_spent"),
        F.col("purchase_count"),
        F.col("products_purchased"),
        F.col("product_ids_purchased"),
    )


def _rate(numerator: str, denominator: str) -> Column:
    """numerator / denominator * 100 in exact decimals, rounded half-up to 0.01; null on 0."""
    exact = (
        F.col(numerator).cast("decimal(20,0)")
        * F.lit(100)
        / F.col(denominator).cast("decimal(20,0)")
    )
    return F.when(F.col(denominator) > 0, F.round(exact, 2)).cast(RATE_TYPE)


def conversion_funnel(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """EXACT distinct users per sliding window who viewed, added to cart and purchased.

    Spark refuses ``countDistinct`` on a stream and ``approx_count_distinct`` is not exact,
    so this is two chained aggregations: first one row per (window, user) with flags for
    what that user did in the window (distinct by construction), then per window the sum of
    those flags.  In append mode both emit once the watermark passes the window's end.
    Columns: its table's (``include.analytics``).
    """
    window = _sliding_window(analytics.funnel_window_seconds, analytics.funnel_slide_seconds)

    def did(event_type: str) -> Column:
        return F.max(F.when(F.col("event_type") == event_type, 1).otherwise(0))

    per_user = events.groupBy(window.alias("window"), F.col("user_id")).agg(
        did("page_view").alias("viewed"),
        did("add_to_cart").alias("carted"),
        did(PURCHASE).alias("purchased"),
    )
    per_window = per_user.groupBy(F.col("window")).agg(
        F.sum("viewed").alias("unique_visitors"),
        F.sum("carted").alias("cart_users"),
        F.sum("purchased").alias("purchasers"),
    )
    return per_window.select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        F.col("unique_visitors"),
        F.col("cart_users"),
        F.col("purchasers"),
        _rate("cart_users", "unique_visitors").alias("cart_conversion_rate"),
        _rate("purchasers", "cart_users").alias("purchase_conversion_rate"),
    )


def _seconds_between(start: str, end: str) -> Column:
    """Elapsed seconds as a double, exact to the microsecond: casting each timestamp to
    whole seconds first would be off by up to a second (0.9 s after a click reads 0)."""
    return (F.unix_micros(F.col(end)) - F.unix_micros(F.col(start))) / F.lit(1_000_000.0)


def user_sessions(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Per user, activity split into sessions by ``session_gap_seconds`` without events.

    ``session_window`` merges each event's span with the spans it overlaps *or touches*, so
    with the full gap two events exactly one gap apart would share a session.  The span is
    one microsecond (Spark's timestamp unit) shorter than the gap: a full gap of silence
    closes the session, anything shorter keeps it open.  ``session_end`` is the last
    event (not the window's end), ``unique_products`` the distinct products viewed: a
    collected set, since ``countDistinct`` is refused on streams.
    Columns: its table's (``include.analytics``).
    """
    span = f"{analytics.session_gap_seconds * 1_000_000 - 1} microseconds"
    session = F.session_window("event_time", span)
    sessions = events.groupBy(session.alias("session"), F.col("user_id")).agg(
        F.min("event_time").alias("session_start"),
        F.max("event_time").alias("session_end"),
        F.count(F.lit(1)).alias("event_count"),
        F.sum(F.when(F.col("event_type") == PURCHASE, F.col("revenue"))).alias("_revenue"),
        F.collect_set(F.when(F.col("event_type") == "page_view", F.col("product_id"))).alias(
            "_viewed"
        ),
    )
    return sessions.select(
        F.col("user_id"),
        F.col("session_start"),
        F.col("session_end"),
        _seconds_between("session_start", "session_end").alias("duration_seconds"),
        F.col("event_count"),
        F.coalesce(F.col("_revenue"), F.lit(0)).cast(MONEY_TYPE).alias("total_revenue"),
        F.size("_viewed").cast("long").alias("unique_products"),
    )


def click_to_purchase(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Page views joined to a later purchase of the same user and product.

    Takes valid events *before* de-duplication and de-duplicates each side after its
    filter: a join reads its input twice, and de-duplicating first would keep every event
    id in state twice (and count each late event on both sides).
    Condition: click_time < purchase_time <= click_time + ``attribution_seconds``.  The time
    range, with the watermark both sides carry, lets Spark drop join state once no future
    event can match.  Every (view, purchase) pair is a row, so a purchase after three views
    of the product gives three rows.  Columns: its table's (``include.analytics``).
    """

    def only(event_type: str) -> DataFrame:
        return deduplicate(events.filter(F.col("event_type") == event_type))

    clicks = only("page_view").select(
        F.col("event_id").alias("click_event_id"),
        F.col("user_id").alias("click_user_id"),
        F.col("product_id").alias("click_product_id"),
        F.col("event_time").alias("click_time"),
        F.col("device_type"),
    )
    purchases = only(PURCHASE).select(
        F.col("event_id").alias("purchase_event_id"),
        F.col("user_id").alias("purchase_user_id"),
        F.col("product_id").alias("purchase_product_id"),
        F.col("event_time").alias("purchase_time"),
        F.col("revenue"),
    )
    window = F.expr(f"INTERVAL {analytics.attribution_seconds} SECONDS")
    joined = clicks.join(
        purchases,
        (F.col("click_user_id") == F.col("purchase_user_id"))
        & (F.col("click_product_id") == F.col("purchase_product_id"))
        & (F.col("purchase_time") > F.col("click_time"))
        & (F.col("purchase_time") <= F.col("click_time") + window),
        "inner",
    )
    return joined.select(
        F.col("click_user_id").alias("user_id"),
        F.col("click_product_id").alias("product_id"),
        F.col("click_event_id"),
        F.col("purchase_event_id"),
        F.col("click_time"),
        F.col("purchase_time"),
        _seconds_between("click_time", "purchase_time").alias("time_to_purchase_seconds"),
        F.col("device_type"),
        F.col("revenue").cast(MONEY_TYPE).alias("revenue"),
    )


Transform = Callable[[DataFrame, AnalyticsSettings], DataFrame]
# The function that computes each analytic declared in include.analytics.
TRANSFORMS: dict[str, Transform] = {
    REVENUE_BY_CATEGORY.name: revenue_by_category,
    HIGH_VALUE_USERS.name: high_value_users,
    CONVERSION_FUNNEL.name: conversion_funnel,
    USER_SESSIONS.name: user_sessions,
    CLICK_TO_PURCHASE.name: click_to_purchase,
}


def transform_of(analytic: Analytic) -> Transform:
    """The transform of an analytic declared in ``include.analytics``."""
    return TRANSFORMS[analytic.name]


def analytic_rows(analytic: Analytic, valid: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """An analytic's rows in its table's columns, from valid events.

    The events are de-duplicated here unless the analytic's transform does it itself
    (``Analytic.deduplicates``).  On a stream, ``valid`` carries the watermark already
    (:func:`with_watermark`).
    """
    events = valid if analytic.deduplicates else deduplicate(valid)
    return transform_of(analytic)(events, analytics).select(*analytic.columns)
