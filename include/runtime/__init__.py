"""Start, stop and inspect the local platform (Kafka, PostgreSQL, Airflow) without Docker;
launch the Spark applications, and run a Spark standalone cluster for the tests."""
