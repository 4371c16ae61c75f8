"""Spark side of the platform: pure DataFrame steps and the two applications that run them.

``spark_jobs.validation`` (parsing and the data contract) and ``spark_jobs.transforms``
(de-duplication, the analytics, Kafka records) are DataFrame steps with no I/O, so unit
tests run them on small static frames.  ``spark_jobs.streaming_app`` wires them to Kafka
and Delta through ``session``, ``sinks``, ``listener`` and ``lifecycle``;
``spark_jobs.backfill_app`` reruns them in batch over one interval.  These two are what
``spark-submit`` runs.
"""
