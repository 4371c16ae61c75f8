"""Start, stop and inspect the local platform (Kafka, PostgreSQL, Airflow) without Docker."""
