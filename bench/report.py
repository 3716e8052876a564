"""The benchmark's report: the table, the ratios, the targets, the chart, docs/benchmarks.md.

Rows are found by their role (bench/contenders.py), so adding a contender adds a row without
touching this module.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

from bench.contenders import Role
from bench.load import wrk_version
from bench.measure import Result

ROLE_COLORS = {
    Role.OURS: "#2a7",
    Role.COURSE: "#bbb",
    Role.CEILING: "#555",
    Role.PEER: "#68c",
    Role.OTHER: "#9cb",
}


def first_of(results: list[Result], role: Role) -> Result:
    """The first row playing ``role``: the one its ratio is computed against."""
    return next(r for r in results if r.contender.role is role)


def table(results: list[Result]) -> str:
    ours, course, ceiling = (
        first_of(results, role) for role in (Role.OURS, Role.COURSE, Role.CEILING)
    )
    lines = [
        "| server | req/s (median) | p50 ms | p99 ms | errors | cold start s | RSS/worker MiB "
        "| slices with an idle worker |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rss = f"{statistics.mean(r.rss_mib):.0f}" if r.rss_mib else "n/a"
        idle = f"{sum(run['idle_worker'] for run in r.runs)}/{len(r.runs)}"
        lines.append(
            f"| {r.contender.name} | {r.rps:,.0f} | {r.median('p50_ms'):.2f} | "
            f"{r.median('p99_ms'):.2f} | {r.errors} | {r.cold_start_s:.2f} | {rss} "
            f"| {idle if r.contender.workers > 1 else 'n/a (1 worker)'} |"
        )
    lines += [
        "",
        f"- ours / baseline at equal workers: **{ours.rps / course.rps:.2f}×**",
        f"- ours / ceiling: **{ours.rps / ceiling.rps:.0%}**",
    ]
    return "\n".join(lines)


def targets(results: list[Result], extra: dict) -> str:
    """The performance issue's targets for whole-service numbers, each with its verdict."""
    ours, course, ceiling = (
        first_of(results, role) for role in (Role.OURS, Role.COURSE, Role.CEILING)
    )
    rows = [
        (
            "throughput ≥ 2× the baseline",
            f"{ours.rps / course.rps:.2f}×",
            ours.rps >= 2 * course.rps,
        ),
        (
            "throughput ≥ 85% of the ceiling",
            f"{ours.rps / ceiling.rps:.0%}",
            ours.rps >= 0.85 * ceiling.rps,
        ),
        ("p99 ≤ 10 ms", f"{ours.median('p99_ms'):.2f} ms", ours.median("p99_ms") <= 10),
        ("no errors", str(ours.errors), ours.errors == 0),
        (
            "1,000-customer batch ≤ 20 ms server time",
            f"{extra['batch_1000_server_ms']:.1f} ms",
            extra["batch_1000_server_ms"] <= 20,
        ),
        ("cold start ≤ 2 s", f"{ours.cold_start_s:.2f} s", ours.cold_start_s <= 2),
    ]
    lines = ["| target | this run | met |", "| --- | ---: | --- |"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in rows]
    return "\n".join(lines)


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [r.contender.name for r in results]
    rps = [r.rps for r in results]
    figure, axis = plt.subplots(figsize=(11, 1.2 + 0.45 * len(results)))
    colors = [ROLE_COLORS[r.contender.role] for r in results]
    bars = axis.barh(names[::-1], rps[::-1], color=colors[::-1])
    axis.bar_label(bars, labels=[f"{v:,.0f}" for v in rps[::-1]], padding=4)
    axis.set_xlabel("requests per second (median of runs, higher is better)")
    axis.set_title("POST /predict, the course's customer, wrk on loopback")
    axis.set_xlim(0, max(rps) * 1.2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine_facts() -> dict[str, str]:
    import gunicorn

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "gunicorn": gunicorn.__version__,
        "flask": importlib.metadata.version("flask"),
        "wrk": wrk_version(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def write_report(args: argparse.Namespace, results: list[Result], extra: dict, report: str) -> None:
    args.output.mkdir(parents=True, exist_ok=True)
    chart(results, args.output / "benchmarks.png")
    facts = machine_facts()
    header = "\n".join(f"- {key}: {value}" for key, value in facts.items())
    settings = (
        f"{args.workers} workers each (the course command: 1), {args.connections} connections, "
        f"{args.repeats} rounds of {args.seconds:g} s wrk slices (servers interleaved; medians), "
        "wrk -t2 on the same machine"
    )
    text = (
        "# Benchmarks\n\nMeasured by `make bench` (`python -m bench.run`); this file is rewritten"
        " by each full run. Hand-written notes live in `docs/performance.md`.\n\n"
        f"{header}\n- settings: {settings}\n\n![req/s](benchmarks.png)\n\n{report}\n"
        f"- 1,000-customer batch request, server time (Server-Timing): "
        f"{extra['batch_1000_server_ms']:.1f} ms\n\n"
        "## Targets\n\nThe performance issue's targets for the whole service, judged on this run"
        " (the scorer's own targets are in `make bench-micro`, docs/performance.md).\n\n"
        f"{targets(results, extra)}\n"
    )
    (args.output / "benchmarks.md").write_text(text)
    print(f"wrote {args.output / 'benchmarks.md'} and benchmarks.png")
