# The platform's commands. `make up` runs it; `make test` runs every test.
PY := .venv/bin/python
CLI := $(PY) -m include.runtime.cli

.PHONY: setup up down status test check lint typecheck bench bench-short chaos airflow

setup:
	@bash scripts/setup.sh

up: setup
	@$(CLI) up

down:
	@if [ -x $(PY) ]; then $(CLI) down; else echo "[platform] nothing to stop (no .venv yet)"; fi

status:
	@$(CLI) status

# The airflow command line on the platform's Airflow:
# make airflow ARGS="backfill create --dag-id backfill --from-date ... --to-date ..."
airflow:
	@$(CLI) airflow $(ARGS)

lint: setup
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .

typecheck: setup
	@.venv/bin/mypy

# The quick check before a commit (under 2 minutes): lint, format, types, the unit and DAG
# tests. `make test` runs everything CI runs.
check: lint typecheck
	@$(PY) -m pytest -q tests/unit tests/dags

test: lint typecheck
	@$(PY) -m pytest

# The benchmarks (benchmarks/run.py): the full run by hand rewrites BENCHMARKS.md;
# `make bench ARGS="--skip at_rest"` leaves stage 6 to `python -m benchmarks.at_rest`.
bench: setup
	@$(PY) -m benchmarks.run $(ARGS)

bench-short: setup
	@$(PY) -m benchmarks.run --short

# A fault campaign on a platform of its own (tests/chaos/): `make chaos ARGS="--kills 100"`.
# It writes docs/chaos.md; `$(PY) -m tests.chaos --help` lists the parameters.
chaos: setup
	@$(PY) -m tests.chaos $(ARGS)
