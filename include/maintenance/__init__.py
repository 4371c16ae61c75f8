"""What keeps a month of uptime bounded: the Delta tables' files and log
(:mod:`include.maintenance.tables`) and the files the platform writes beside them
(:mod:`include.maintenance.files`).  The ``table_maintenance`` DAG runs both on
``[maintenance] schedule``; the retention bounds are in ``[maintenance]``."""
