# The platform's commands. `make up` runs it; `make test` runs every test.
PY := .venv/bin/python
CLI := $(PY) -m include.runtime.cli

.PHONY: setup up down status test check lint typecheck bench bench-short chaos airflow user

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

# Airflow users and their roles (viewer, operator, admin); the password is asked for, or read
# from stdin: make user ARGS="add alice --role viewer"; make user ARGS=list
user:
	@$(CLI) user $(ARGS)

lint: setup
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .

typecheck: setup
	@.venv/bin/mypy

# The unit and DAG tests share nothing but their machine: two workers (pytest-xdist), one
# local Spark each. The other tiers start brokers, drivers and Airflow of their own and run
# one test at a time: CPU-bound already, they would only slow each other down.
FAST_TIERS := tests/unit tests/dags
PLATFORM_TIERS := tests/ui tests/integration tests/cluster tests/bench tests/e2e

# The quick check before a commit (under 2 minutes): lint, format, types, the unit and DAG
# tests. `make test` runs everything CI runs.
check: lint typecheck
	@$(PY) -m pytest -q -n 2 $(FAST_TIERS)

# Every tier, the platform's even when types or a fast one failed (CI shows all failures at
# once). mypy runs beside the fast tiers (one core of its own: 68 s for both against 79 s one
# after the other); its report is printed when it is done.
test: lint
	@types_log=$$(mktemp); .venv/bin/mypy > $$types_log 2>&1 & types_pid=$$!; \
	$(PY) -m pytest -n 2 $(FAST_TIERS); fast=$$?; \
	wait $$types_pid; types=$$?; cat $$types_log; rm -f $$types_log; \
	$(PY) -m pytest $(PLATFORM_TIERS); platform=$$?; \
	exit $$(( types || fast || platform ))

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
