"""Data quality of the sink tables: Great Expectations checks, their history and report.

The modules, in the order a run uses them:

* :mod:`~include.quality.checks`: what "right" means for every table, declared as data;
* :mod:`~include.quality.source`: the input topic as the checks read it (Kafka, or records
  in memory);
* :mod:`~include.quality.slices`: what a run reads of each table, shaped for GX;
* :mod:`~include.quality.measures` and :mod:`~include.quality.reconciliation`: the
  table-level measures (schema, duplicate keys, freshness, dead-letter rate; revenue
  against Kafka);
* :mod:`~include.quality.gx_runner`: the GX context, suites and checkpoints;
* :mod:`~include.quality.report` and :mod:`~include.quality.formatting`: the results in
  words, and the failure a ``fail`` check raises;
* :mod:`~include.quality.history`: the results stored for the report pages, and the
  versions validated;
* :mod:`~include.quality.run`: :func:`~include.quality.run.run_quality`, one run end to
  end.

Nothing is re-exported here: each name is imported from its module.
"""
