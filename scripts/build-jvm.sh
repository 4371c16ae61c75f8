#!/usr/bin/env bash
# Builds the project's own Spark UDF (jvm/avro-json: Confluent-framed Avro to JSON) into
# .cache/jars/spark-ecom/ecom-avro.jar, where the Spark launches find it beside the connector
# jars.  Compiled against pyspark's own jars (Avro, Jackson, slf4j and Spark SQL are all
# there), so there is nothing to download and the classes match what Spark loads at run time.
# Idempotent: skipped while the sources, this script, pyspark's jars and javac are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 2; }
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

SRC=jvm/avro-json/src/main/java
# The Docker image builds it too, into its own jar dir against its own pyspark.
OUT=${ECOM_UDF_JAR_DIR:-.cache/jars/spark-ecom}
JAR=$OUT/ecom-avro.jar
PYSPARK_JARS=${PYSPARK_JARS:-.venv/lib/python3.11/site-packages/pyspark/jars}

JAVAC=${JAVA_HOME:+$JAVA_HOME/bin/}javac
JAR_TOOL=${JAVA_HOME:+$JAVA_HOME/bin/}jar
command -v "$JAVAC" >/dev/null 2>&1 && command -v "$JAR_TOOL" >/dev/null 2>&1 \
  || die "javac and jar (a JDK, not only a Java runtime) are required to build the Avro UDF in $SRC. Install one (Debian: apt-get install openjdk-17-jdk-headless) or point JAVA_HOME at a JDK 17+."
ls "$PYSPARK_JARS"/spark-sql_*.jar >/dev/null 2>&1 \
  || die "pyspark's jars are not in $PYSPARK_JARS: the virtualenv must be set up first (make setup)."

mapfile -t sources < <(find "$SRC" -name '*.java' | LC_ALL=C sort)
[ ${#sources[@]} -gt 0 ] || die "no Java sources under $SRC"

# What the jar depends on: the sources, this script (its javac options), the JDK, and the
# names (so the versions) of the jars compiled against.
want=$( { stamp "${sources[@]}" "$0"; "$JAVAC" -version 2>&1; ls "$PYSPARK_JARS"; } | sha256sum | cut -c1-16)
if [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$want" ] && [ -f "$JAR" ]; then
  exit 0
fi

say "compiling the Avro UDF ($SRC) into $JAR"
mkdir -p "$OUT"
build=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$build"' EXIT
if ! "$JAVAC" --release 17 -encoding UTF-8 -Xlint:all,-path \
      -cp "$PYSPARK_JARS/*" -d "$build/classes" "${sources[@]}" > "$build/javac.log" 2>&1; then
  cat "$build/javac.log" >&2
  die "javac could not compile $SRC (errors above)"
fi
# -Xlint:all minus "path" (pyspark's jars name absent jars in their manifests): a warning
# here is worth reading, so show it.
[ -s "$build/javac.log" ] && cat "$build/javac.log" >&2
"$JAR_TOOL" --create --file "$build/ecom-avro.jar" -C "$build/classes" . \
  || die "the jar tool could not pack $JAR"
# A finished jar or none: a Spark launch never picks up a half-written one.
mv -f "$build/ecom-avro.jar" "$JAR"
echo "$want" > "$OUT/.stamp"
