"""The benchmark results as a PNG plot (docs/benchmarks/benchmarks.png when published)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.targets import defaults_latency
from include.analytics import ANALYTIC_NAMES


def plot(results: dict, path: Path) -> None:
    """Four panels: throughput beside Kafka's tools, latency by rate, state and batch
    duration as users grow."""
    import matplotlib

    # No display needed: the plot goes to a file.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ceiling = results["kafka_ceiling"]
    producer = results["producer"]

    ax = axes[0][0]
    bars = {
        "Java producer": ceiling["producer"]["records_per_second"],
        "platform producer": producer["platform"]["events_per_second"],
        "tutorial producer": producer["tutorial"]["events_per_second"],
        "Java consumer": ceiling["consumer"]["records_per_second"],
        "pipeline (sustained)": results["pipeline"]["events_per_second"],
        **{f"lever: {r['label'][:40]}": r["events_per_second"] for r in results.get("levers", [])},
    }
    ax.barh(list(bars), list(bars.values()), color="#4c72b0")
    ax.set_xscale("log")
    ax.set_xlabel("events per second (log scale)")
    ax.set_title("Throughput beside Kafka's own tools")
    ax.invert_yaxis()

    ax = axes[0][1]
    for analytic in ANALYTIC_NAMES:
        xs, ys = [], []
        for run in defaults_latency(results):
            if "skipped" in run:
                continue
            p95 = run["analytics"][analytic]["topic"]["p95"]
            if p95 is not None:
                xs.append(run["rate"])
                ys.append(p95)
        if xs:
            ax.plot(xs, ys, marker="o", label=analytic)
    ax.axhline(5, color="grey", linestyle="--", linewidth=1, label="target p95 5 s")
    ax.set_xlabel("input events per second")
    ax.set_ylabel("p95 seconds, final to visible in topic")
    ax.set_title("Latency")
    ax.legend(fontsize=8)

    scale = results["scale"]
    users = [s["distinct_users"] for s in scale]
    ax = axes[1][0]
    ax.plot(users, [s["state_rows"] for s in scale], marker="o", label="state rows")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("distinct users")
    ax.set_ylabel("peak state rows")
    ax.set_title("State as users grow")
    twin = ax.twinx()
    twin.plot(users, [s["state_memory_bytes"] / 2**20 for s in scale], marker="s", color="#dd8452")
    twin.set_ylabel("peak state memory, MiB", color="#dd8452")

    ax = axes[1][1]
    ax.plot(users, [s["batch_ms"]["p50"] for s in scale], marker="o", label="p50")
    ax.plot(users, [s["batch_ms"]["max"] for s in scale], marker="o", label="max")
    ax.set_xscale("log")
    ax.set_xlabel("distinct users")
    ax.set_ylabel("batch duration, ms")
    ax.set_title("Batch duration as users grow")
    ax.legend()

    fig.suptitle(
        f"{results['mode']} run, {results['machine']['cpus']} CPUs, {results['started'][:10]}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
