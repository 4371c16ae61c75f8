"""The peer row: the tutorial's own windowed queries, changed only as much as Spark 4 needs.

The tutorial this platform implements (docs/DESIGN.md, section 1) computes revenue by
category, high-value users and the conversion funnel as windowed ``groupBy`` aggregations
in update mode with a 10 s trigger.  Here they are on the same events, windows and
thresholds as the platform's (config/platform.toml), writing to Kafka, with the two changes
without which Spark does not run them:

* distinct users in the funnel: ``approx_count_distinct`` (HyperLogLog), because Spark
  rejects distinct aggregates on a stream, and its rates with ``try_divide``, because Spark
  4 divides in ANSI mode (a window without carts would stop the query);
* a watermark (the platform's delay), because an update-mode aggregation without one keeps
  every window in its state for ever.

Nothing is de-duplicated or validated (a malformed record becomes a row of nulls) and
update mode sends a window's row again every trigger in which it changed: a consumer sees
partial values first and cannot tell the last one.  benchmarks/peer.py measures, per window,
the time from the window's end to the first record that carries its final value.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from include.analytics import CONVERSION_FUNNEL, HIGH_VALUE_USERS, REVENUE_BY_CATEGORY
from include.kafka.client import admin
from include.kafka.security import spark_kafka_options
from include.settings import Settings

# The query names (progress records) and the suffix of their output topics.
PREFIX = "tutorial_"
NAMES = tuple(PREFIX + a.name for a in (REVENUE_BY_CATEGORY, HIGH_VALUE_USERS, CONVERSION_FUNNEL))

# The tutorial's event schema, its fields read as it reads them.
SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("timestamp", T.TimestampType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("product_id", T.StringType()),
        T.StructField("product_name", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("quantity", T.IntegerType()),
        T.StructField("revenue", T.DoubleType()),
    ]
)


def topic(settings: Settings, name: str) -> str:
    """The output topic of a tutorial query."""
    return settings.output_topic(name)


def create_topics(settings: Settings) -> None:
    """The output topics, with the input's partitions (the broker creates none itself)."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    client = admin(settings.bootstrap_servers)
    try:
        for name in NAMES:
            try:
                client.create_topics(
                    [NewTopic(topic(settings, name), settings.kafka.partitions, 1)]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        client.close()


def events(spark: SparkSession, settings: Settings) -> DataFrame:
    """The input topic, parsed the tutorial's way: ``from_json`` and nothing else."""
    raw = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings))
        .option("subscribe", settings.kafka.input_topic)
        .option("startingOffsets", "latest")
        .load()
    )
    parsed = raw.select(F.from_json(F.col("value").cast("string"), SCHEMA).alias("e"))
    return parsed.select("e.*").withWatermark(
        "timestamp", f"{settings.analytics.watermark_seconds} seconds"
    )


def _window(seconds: int, slide: int) -> Column:
    return F.window("timestamp", f"{seconds} seconds", f"{slide} seconds")


def _purchases_by(
    events: DataFrame, seconds: int, slide: int, key: str, *aggregates: Column
) -> DataFrame:
    """The purchases' windows per `key`, aggregated."""
    purchases = events.filter(F.col("event_type") == "purchase")
    return purchases.groupBy(_window(seconds, slide), key).agg(*aggregates)


def revenue_by_category(events: DataFrame, settings: Settings) -> DataFrame:
    a = settings.analytics
    return _purchases_by(
        events,
        a.revenue_window_seconds,
        a.revenue_slide_seconds,
        "category",
        F.sum("revenue").alias("total_revenue"),
        F.count("*").alias("purchase_count"),
        F.avg("revenue").alias("avg_order_value"),
    )


def high_value_users(events: DataFrame, settings: Settings) -> DataFrame:
    a = settings.analytics
    return _purchases_by(
        events,
        a.high_value_window_seconds,
        a.high_value_slide_seconds,
        "user_id",
        F.sum("revenue").alias("total_spent"),
        F.count("*").alias("purchase_count"),
        F.collect_set("product_name").alias("products_purchased"),
    ).filter(F.col("total_spent") > a.high_value_threshold)


def conversion_funnel(events: DataFrame, settings: Settings) -> DataFrame:
    a = settings.analytics

    def users(kind: str) -> Column:
        return F.approx_count_distinct(F.when(F.col("event_type") == kind, F.col("user_id")))

    counts = events.groupBy(_window(a.funnel_window_seconds, a.funnel_slide_seconds)).agg(
        users("page_view").alias("unique_visitors"),
        users("add_to_cart").alias("cart_users"),
        users("purchase").alias("purchasers"),
    )
    return counts.select(
        "*",
        # Spark 4 divides in ANSI mode: a window without carts would fail the query.
        (F.try_divide("cart_users", "unique_visitors") * 100).alias("cart_conversion_rate"),
        (F.try_divide("purchasers", "cart_users") * 100).alias("purchase_conversion_rate"),
    )


QUERIES = {
    NAMES[0]: (revenue_by_category, ["category"]),
    NAMES[1]: (high_value_users, ["user_id"]),
    NAMES[2]: (conversion_funnel, []),
}


def to_kafka(rows: DataFrame, keys: list[str]) -> DataFrame:
    """Key = window start and group key; value = the row as JSON, window start and end
    flattened (benchmarks/peer.py reads them back)."""
    flat = rows.select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        *[c for c in rows.columns if c != "window"],
    )
    key = F.concat_ws("|", F.col("window_start").cast("string"), *[F.col(k) for k in keys])
    return flat.select(key.alias("key"), F.to_json(F.struct(*flat.columns)).alias("value"))


def start(
    spark: SparkSession, settings: Settings, trigger_seconds: int = 10
) -> list[StreamingQuery]:
    """The three queries, each its own read of the topic, as the tutorial runs them."""
    create_topics(settings)
    started = []
    for name, (query, keys) in QUERIES.items():
        rows = query(events(spark, settings), settings)
        started.append(
            to_kafka(rows, keys)
            .writeStream.queryName(name)
            .outputMode("update")
            .format("kafka")
            .options(**spark_kafka_options(settings))
            .option("topic", topic(settings, name))
            .option("checkpointLocation", str(settings.paths.checkpoint_path(name)))
            .trigger(processingTime=f"{trigger_seconds} seconds")
            .start()
        )
    return started
