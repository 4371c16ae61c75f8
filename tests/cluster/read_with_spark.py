"""Read a topic with Spark's Kafka source once per security mode, in a process of its own.

``python -m tests.cluster.read_with_spark`` reads {"topic": ..., "modes": {name: {ECOM_*
variables}}} on stdin and prints {name: [record values]} as the last line: each read builds
its Kafka options with ``spark_kafka_options`` under that mode's variables, as
the streaming app does.  A process of its own because the test process may already hold a
SparkSession without the Kafka connector (the unit tests' one).
"""

from __future__ import annotations

import json
import os
import sys

from pyspark.sql import SparkSession

from include.kafka.security import spark_kafka_options
from include.runtime.spark_launch import connector_jars
from include.settings import Settings


def main() -> None:
    """Read the topic in each mode; print the values read, per mode, as JSON."""
    request = json.load(sys.stdin)
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.jars", ",".join(str(j) for j in connector_jars(Settings())))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    read = {}
    try:
        for name, env in request["modes"].items():
            os.environ.update(env)
            frame = (
                spark.read.format("kafka")
                .options(**spark_kafka_options(Settings()))
                .option("subscribe", request["topic"])
                # The consumer group prefix the streaming user's ACLs grant.
                .option("groupIdPrefix", "spark-kafka-source")
                .load()
            )
            read[name] = [bytes(row.value).decode() for row in frame.select("value").collect()]
            for key in env:
                del os.environ[key]
    finally:
        spark.stop()
    print(json.dumps(read), flush=True)


if __name__ == "__main__":
    main()
