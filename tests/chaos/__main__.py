"""`make chaos`: a platform of its own, the campaign on it, then its report written.

The counts are printed, and written as Markdown (``--report``, docs/chaos.md by default)
and JSON beside it.  Exit status 0 only when nothing was lost, duplicated or wrong and the
platform recovered from every fault.  ``python -m tests.chaos --help`` lists the parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from include.runtime.cli import api_client
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from tests import chaos
from tests.chaos.campaign import run_campaign, say
from tests.chaos.faults import Plan
from tests.chaos.own_platform import platform_env, start_streaming
from tests.chaos.report import markdown, summary

DEFAULT_REPORT = PROJECT_ROOT / "docs" / "chaos.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=chaos.__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the driver")
    parser.add_argument("--freezes", type=int, default=3, help="SIGSTOPs of the driver")
    parser.add_argument("--broker-restarts", type=int, default=2)
    parser.add_argument("--scheduler-restarts", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--max-pause", type=float, default=20.0, help="seconds, before a fault")
    parser.add_argument("--supervisor-interval", type=int, default=20, help="seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--state-dir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--keep-running", action="store_true", help="no `make down` at the end")
    args = parser.parse_args(argv)
    plan = Plan(args.kills, args.freezes, args.broker_restarts, args.scheduler_restarts)
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="ecom-chaos-"))
    env = platform_env(state, args.supervisor_interval)
    os.environ.update(env)
    settings = Settings()
    cli = [sys.executable, "-m", "include.runtime.cli"]
    say(f"a platform of its own in {state}: make up")
    subprocess.run([*cli, "up"], check=True, cwd=PROJECT_ROOT)
    try:
        api = api_client(settings)
        api.login()
        start_streaming(settings, api)
        report = run_campaign(
            settings, api, plan, rate=args.rate, seed=args.seed, max_pause=args.max_pause
        )
    finally:
        if not args.keep_running:
            say("make down")
            subprocess.run([*cli, "down"], check=False, cwd=PROJECT_ROOT)
    command = 'make chaos ARGS="' + " ".join(argv if argv is not None else sys.argv[1:]) + '"'
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(markdown(report, command))
    args.report.with_suffix(".json").write_text(json.dumps(report.to_json(), indent=2, default=str))
    say(summary(report))
    say(f"report: {args.report}; platform state kept in {state}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
