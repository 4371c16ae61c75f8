"""Importable code the DAGs, Spark jobs and the platform CLI share."""
