"""The benchmark results as BENCHMARKS.md, a PNG plot and a console summary.

    .venv/bin/python -m benchmarks.report [results.json]

The document's text is benchmarks/templates/BENCHMARKS.md.j2 (with sections.md.j2 beside
it); benchmarks/report_values.py computes each section's values and tables.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import jinja2

from benchmarks import report_values
from benchmarks.plot import plot
from benchmarks.published import PUBLISHED
from benchmarks.report_values import number
from include.settings.base import PROJECT_ROOT

COMMAND = {"full": "make bench", "short": "make bench-short"}
TEMPLATE = "BENCHMARKS.md.j2"
SECTIONS = "sections.md.j2"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        undefined=jinja2.StrictUndefined,  # a value the template names must exist
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["n"] = number
    env.filters["fmt"] = format
    return env


ENVIRONMENT = _environment()


def markdown(results: dict, plot: Path) -> str:
    """BENCHMARKS.md for a run's results, the plot at `plot`."""
    text = ENVIRONMENT.get_template(TEMPLATE).render(sections(results, plot))
    # The template puts blank lines between blocks freely: the document has exactly one.
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def render_section(macro_name: str, values: dict | None) -> str:
    """One section alone, as the document shows it: a macro of sections.md.j2 over the
    values its function in report_values computed, e.g.
    render_section("alone_section", report_values.alone(results))."""
    macro = getattr(ENVIRONMENT.get_template(SECTIONS).module, macro_name)
    return re.sub(r"\n{3,}", "\n\n", str(macro(values))).strip()


def sections(results: dict, plot: Path) -> dict:
    """The values of every section of the template."""
    return {
        "results": results,
        "header": header(results, plot),
        "targets": report_values.target_rows(results),
        "profile": report_values.profile(results["producer"]),
        "producer_clients": report_values.producer_clients(results),
        "producer_levers": report_values.producer_levers(results),
        "pipeline": report_values.pipeline(results),
        "alone": report_values.alone(results),
        "latency": [report_values.latency_run(run) for run in results["latency"]],
        "scale": report_values.scale(results["scale"]),
        "at_rest": report_values.at_rest(results),
        "peer": report_values.peer(results),
    }


def header(results: dict, plot: Path) -> dict:
    """The command that wrote the document, and the plot's path from the document."""
    # BENCHMARKS.md sits at the project root when published, beside the plot otherwise.
    document_dir = PUBLISHED.parent.parent if plot.parent == PUBLISHED else plot.parent
    return {
        "command": COMMAND[results["mode"]],
        "plot": os.path.relpath(plot, start=document_dir),
    }


def summary(results: dict) -> str:
    """The console's last words: each target, measured, met or not."""
    lines = [f"benchmarks ({results['mode']}) done in {results['seconds']} s"]
    for t in results["targets"]:
        lines.append(
            f"  {t['name']}: {t['measured']} (target {t['target']}) "
            f"{'met' if t['met'] else 'NOT met'}"
        )
    return "\n".join(lines)


def write(results: dict, directory: Path) -> Path:
    """The plot into `directory` and the markdown beside it, or at the project root when
    `directory` is the published one; returns the markdown's path."""
    image = directory / "benchmarks.png"
    plot(results, image)
    target = (
        PROJECT_ROOT / "BENCHMARKS.md" if directory == PUBLISHED else directory / "BENCHMARKS.md"
    )
    target.write_text(markdown(results, plot=image))
    return target


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.report [results.json]`: rewrite the markdown and the plot from a
    run's results (default: the published full run), without measuring again."""
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]).resolve() if args else PUBLISHED / "results.json"
    target = write(json.loads(source.read_text()), source.parent)
    print(f"wrote {target} and {source.parent / 'benchmarks.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
