"""Spark side of the platform: pure DataFrame transforms and the streaming application.

``spark_jobs.transforms`` holds every DataFrame -> DataFrame step (parsing, validation,
de-duplication, the analytics) with no I/O, so unit tests run them on small static frames.
``spark_jobs.streaming_app`` wires them to Kafka and Delta and is what ``spark-submit`` runs.
"""
