# Airflow 3 with Java, the project, its pinned runtime requirements and the Spark/Kafka jars.
# Built by docker-compose.yaml; the same DAGs as local mode.  The Airflow containers and the
# Spark master, workers and History Server all run this image (one uid, one Spark version).
# Only requirements.txt goes in: the test and tooling packages of requirements-dev.txt
# (pytest, selenium, ruff, mypy, matplotlib, py-spy, ...) stay out of production.

# ---- the Spark connector jars, fetched from Maven Central with the project's own pom
FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY jars/spark-connectors.pom.xml jars/spark-connectors.pom.xml
RUN mvn -B -q -f jars/spark-connectors.pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/build/spark

# ---- Airflow, Java for spark-submit, the project
FROM apache/airflow:3.3.2-python3.11
USER 0
# Versions are those of the base image's Debian release; pinning each one would break
# every security update of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jdk-headless curl \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")" /usr/lib/jvm/java-17
# The JDK under one name on every architecture (Debian's directory ends in -amd64, -arm64, ...).
ENV JAVA_HOME=/usr/lib/jvm/java-17
RUN mkdir -p /opt/ecom/state \
    && chown -R 50000:0 /opt/ecom
USER 50000
COPY --chown=50000:0 requirements.txt constraints.txt /opt/ecom/
RUN pip install --no-cache-dir -r /opt/ecom/requirements.txt -c /opt/ecom/constraints.txt
COPY --from=jars --chown=50000:0 /build/spark /opt/ecom/jars/spark
COPY --chown=50000:0 config /opt/ecom/config
COPY --chown=50000:0 include /opt/ecom/include
COPY --chown=50000:0 dags /opt/ecom/dags
COPY --chown=50000:0 plugins /opt/ecom/plugins
COPY --chown=50000:0 spark_jobs /opt/ecom/spark_jobs
COPY --chown=50000:0 scripts /opt/ecom/scripts
COPY --chown=50000:0 jvm /opt/ecom/jvm
# The Spark apps' Avro decoder, compiled against the image's own pyspark (a JDK, hence
# openjdk-17-jdk-headless above).
WORKDIR /opt/ecom
RUN ECOM_UDF_JAR_DIR=/opt/ecom/jars/spark-ecom \
    PYSPARK_JARS="$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/jars" \
    bash scripts/build-jvm.sh
ENV PYTHONPATH=/opt/ecom \
    ECOM_CONFIG_FILE=/opt/ecom/config/platform.toml
