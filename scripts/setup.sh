#!/usr/bin/env bash
# One-time, idempotent set-up: the virtualenv (.venv) and the jar cache (.cache/jars).
# Called by `make up` and `make test`; re-runs only what changed (stamp files hold hashes).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 2; }

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "Python 3.11 is required (found $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11."

JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
command -v "$JAVA" >/dev/null 2>&1 || die "Java 17+ is required for Kafka and Spark and was not found. Install a JDK (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME."
java_major=$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[ "${java_major:-0}" -ge 17 ] || die "Java $java_major found; Kafka 4 and Spark 4 need Java 17+. Point JAVA_HOME at a newer JDK."

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

# ---- virtualenv: the runtime (requirements.txt) and the development tools on top of it
# (requirements-dev.txt: tests, linters, benchmarks); the production image takes the first only
want=$(stamp requirements.txt requirements-dev.txt constraints.txt)
if [ "$(cat .venv/.stamp 2>/dev/null)" != "$want" ]; then
  say "creating the virtualenv in .venv and installing requirements-dev.txt (first time: a few minutes)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r requirements-dev.txt -c constraints.txt \
    || die "pip could not install requirements-dev.txt; see the error above (is PyPI reachable?)"
  echo "$want" > .venv/.stamp
fi

# ---- jars from Maven Central
command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is required to fetch the Kafka and Spark connector jars. Install it (Debian: apt-get install maven)."
fetch() {  # fetch <pom> <dir>
  local pom=$1 dir=$2 want
  want=$(stamp "$pom")
  [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$want" ] && return 0
  say "fetching jars for $pom into $dir"
  rm -rf "$dir" && mkdir -p "$dir"
  if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$PWD/$dir" > "$dir.mvn.log" 2>&1; then
    grep -E 'ERROR' "$dir.mvn.log" | head -5 >&2 || true
    die "Maven could not fetch the jars of $pom (full log: $dir.mvn.log). Is Maven Central reachable?"
  fi
  echo "$want" > "$dir/.stamp"
}
mkdir -p .cache/jars
fetch jars/kafka-broker.pom.xml .cache/jars/kafka
fetch jars/spark-connectors.pom.xml .cache/jars/spark
# ---- the Spark apps' Avro decoder (jvm/): compiled against pyspark's jars
bash scripts/build-jvm.sh
# ---- the schema registry (Apicurio Registry, Maven Central) and a Java 21+ to run it
.venv/bin/python -m include.runtime.registry --setup || die "could not set up the schema registry (see above)"
# ---- the Spark drivers' class-data archive: drivers start in ~4 s instead of ~7 (once per
# pyspark and Java; it only saves time, so a failure is a warning)
.venv/bin/python -m include.runtime.spark_cds
# ---- the files GX Data Docs would load from CDNs, served by the UI plugin instead
command -v npm >/dev/null 2>&1 || die "npm (Node.js) is required to fetch the report pages' CSS and JavaScript. Install it (Debian: apt-get install npm)."
want=$(stamp include/ui/vendor/package.json include/ui/vendor/package-lock.json)
if [ "$(cat .cache/web/.stamp 2>/dev/null)" != "$want" ]; then
  say "fetching the report pages' CSS and JavaScript from the npm registry into .cache/web"
  rm -rf .cache/web && mkdir -p .cache/web
  cp include/ui/vendor/package.json include/ui/vendor/package-lock.json include/ui/vendor/.npmrc .cache/web/
  (cd .cache/web && npm ci --ignore-scripts --omit=dev > npm.log 2>&1) \
    || die "npm could not install the report assets (log: .cache/web/npm.log). Is the npm registry reachable?"
  echo "$want" > .cache/web/.stamp
fi

# ---- Debian tools the tests use: a headless browser for the UI plugin's pages, and
# docker-compose to validate docker-compose.yaml (no Docker engine is needed for that)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && $as_root true 2>/dev/null; then
    say "installing ${missing[*]} from Debian's packages (used by the tests)"
    export DEBIAN_FRONTEND=noninteractive
    $as_root apt-get install -y -q "${missing[@]}" > .cache/apt.log 2>&1 \
      || { $as_root apt-get update -q >> .cache/apt.log 2>&1 \
           && $as_root apt-get install -y -q "${missing[@]}" >> .cache/apt.log 2>&1; } \
      || die "apt-get could not install ${missing[*]} (log: .cache/apt.log)"
  else
    say "WARNING: ${missing[*]} not found and apt-get is not usable here; the tests that need them will fail until you install them (Debian: apt-get install ${missing[*]})"
  fi
fi
# ---- Debian's Prometheus for the metrics test, unpacked into .cache/tools (no root needed)
if command -v apt-get >/dev/null 2>&1; then
  .venv/bin/python -c 'from include.runtime.tools import prometheus_binary as p; from include.settings import get_settings as s; p(s())' \
    || die "could not fetch Debian's prometheus package (see the error above)"
else
  say "WARNING: apt-get not found; the metrics test needs a Prometheus 2.x unpacked into .cache/tools/prometheus/usr/bin/prometheus"
fi
say "ready: .venv, .cache/jars, .cache/web and the test tools"
