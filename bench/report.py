"""The benchmark's report: the table, the ratios, the goals, the chart, docs/benchmarks.md.

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
    Role.CONTAINER: "#2a7",
    Role.CONTAINER_NO_LOG: "#9cb",
}
CONTAINER_SHARE_GOAL = 0.9  # issue 11: the container as shipped vs without its access log
CONTAINER_P99_MS_GOAL = 8.0
# The project's own libraries that a request goes through, for the versions section.
OUR_LIBRARIES = ("gunicorn", "flask", "orjson", "pydantic", "prometheus-client", "scikit-learn")


def measured(results: list[Result]) -> list[Result]:
    return [r for r in results if r.runs]


def first_of(results: list[Result], role: Role) -> Result | None:
    """The first measured row playing ``role``: the one its ratio is computed against."""
    return next((r for r in measured(results) if r.contender.role is role), None)


def best_peer(results: list[Result]) -> Result | None:
    peers = [r for r in measured(results) if r.contender.role is Role.PEER]
    return max(peers, key=lambda r: r.rps, default=None)


def ratios(results: list[Result]) -> dict[str, tuple[Result, float] | None]:
    """ours / ceiling, ours / best peer and ours / course, each with the row it is against."""
    ours = first_of(results, Role.OURS)
    assert ours is not None, "this service was not measured"
    against = {
        "ceiling": first_of(results, Role.CEILING),
        "best peer": best_peer(results),
        "course": first_of(results, Role.COURSE),
    }
    return {name: (row, ours.rps / row.rps) if row else None for name, row in against.items()}


def table(results: list[Result]) -> str:
    lines = [
        "| server | req/s (median) | p50 ms | p99 ms | errors | cold start s | RSS/worker MiB "
        "| slices with an idle worker | server CPU µs/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if not r.runs:
            lines.append(
                f"| {r.contender.name} | — | — | — | — | — | — | not measured: see below |"
            )
            continue
        rss = f"{statistics.mean(r.rss_mib):.0f}" if r.rss_mib else "n/a"
        idle = f"{sum(run['idle_worker'] for run in r.runs)}/{len(r.runs)}"
        lines.append(
            f"| {r.contender.name} | {r.rps:,.0f} | {r.median('p50_ms'):.2f} | "
            f"{r.median('p99_ms'):.2f} | {r.errors} | {r.cold_start_s:.2f} | {rss} "
            f"| {idle if r.contender.workers > 1 else 'n/a (1 worker)'} "
            f"| {r.median('cpu_us'):.0f} |"
        )
    lines.append("")
    ours = first_of(results, Role.OURS)
    assert ours is not None
    for name, found in ratios(results).items():
        if found is None:
            lines.append(f"- ours / {name}: not measured")
            continue
        row, ratio = found
        by_cpu = row.median("cpu_us") / ours.median("cpu_us")
        value, cpu = (
            (f"{ratio:.0%}", f"{by_cpu:.0%}")
            if name == "ceiling"
            else (f"{ratio:.2f}×", f"{by_cpu:.2f}×")
        )
        lines.append(
            f"- ours / {name}: **{value}** by req/s, {cpu} by server CPU per request "
            f"(against: {row.contender.name})"
        )
    lines += [f"- not measured: {r.contender.name}: {r.unavailable}" for r in results if not r.runs]
    return "\n".join(lines)


def goals(results: list[Result], extra: dict) -> str:
    """The performance goals for the whole service, each with this run's verdict."""
    ours = first_of(results, Role.OURS)
    assert ours is not None
    found = ratios(results)
    rows = [_ratio_goal("≥ 90% of the raw WSGI ceiling", found["ceiling"], 0.9, percent=True)]
    rows.append(_ratio_goal("≥ 1.7× the best peer", found["best peer"], 1.7))
    rows.append(_ratio_goal("≥ 2× the course's way at equal workers", found["course"], 2.0))
    p99 = ours.median("p99_ms")
    rows += [
        ("p99 ≤ 5 ms at 16 connections", f"{p99:.2f} ms", "yes" if p99 <= 5 else "**no**"),
        ("no errors", str(ours.errors), "yes" if ours.errors == 0 else "**no**"),
    ]
    batch = extra["batch_1000_server_ms"]
    rows.append(("1,000-customer batch ≤ 20 ms server time", f"{batch:.1f} ms", _yes(batch <= 20)))
    cold = ours.cold_start_s
    rows.append(("cold start ≤ 2 s", f"{cold:.2f} s", _yes(cold <= 2)))
    rows += container_goals(results)
    lines = ["| goal | this run | met |", "| --- | ---: | --- |"]
    lines += [f"| {name} | {value} | {verdict} |" for name, value, verdict in rows]
    return "\n".join(lines)


def container_goals(results: list[Result]) -> list[tuple[str, str, str]]:
    """In the container, the access log may cost at most 10%, and p99 stays ≤ 8 ms."""
    if not any(r.contender.role is Role.CONTAINER for r in results):
        return []  # not asked for (--no-containers, --smoke)
    shipped = first_of(results, Role.CONTAINER)
    quiet = first_of(results, Role.CONTAINER_NO_LOG)
    if shipped is None or quiet is None:
        return [("in the container (rows not measured, see above)", "—", "not judged")]
    share = shipped.rps / quiet.rps
    p99 = shipped.median("p99_ms")
    return [
        (
            "in the container: default ≥ 90% of `GUNICORN_ACCESSLOG=`",
            f"{share:.0%}",
            _yes(share >= CONTAINER_SHARE_GOAL),
        ),
        ("in the container: p99 ≤ 8 ms", f"{p99:.2f} ms", _yes(p99 <= CONTAINER_P99_MS_GOAL)),
        ("in the container: no errors", str(shipped.errors), _yes(shipped.errors == 0)),
    ]


def image_section() -> str:
    """The image's size and build time, when the container rows built it."""
    from bench.container_rows import IMAGE_FACTS

    if not IMAGE_FACTS:
        return ""
    facts = "\n".join(f"- {key}: {value}" for key, value in IMAGE_FACTS.items())
    return (
        "\n## The container image\n\nBuilt from a clean copy of the checkout in a private "
        "engine (bench/engine.py); the build on an empty engine starts from the base image alone, "
        "nothing cached (its pull is not timed).\n\n" + facts + "\n"
    )


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def _ratio_goal(
    name: str, found: tuple[Result, float] | None, least: float, percent: bool = False
) -> tuple[str, str, str]:
    if found is None:
        return name, "not measured", "not judged"
    ratio = found[1]
    return name, f"{ratio:.0%}" if percent else f"{ratio:.2f}×", _yes(ratio >= least)


def versions(results: list[Result]) -> str:
    """The software each row ran: the project's lock for ours, each peer's own environment."""
    ours = ", ".join(f"{n} {importlib.metadata.version(n)}" for n in OUR_LIBRARIES)
    lines = [f"- this service, baselines and ceilings (Pipfile.lock): {ours}"]
    seen: set[str] = set()
    for r in results:
        pinned = ", ".join(f"{n} {v}" for n, v in r.contender.versions.items())
        if pinned and pinned not in seen:
            seen.add(pinned)
            lines.append(f"- {r.contender.name} (own environment): {pinned}")
    return "\n".join(lines)


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = measured(results)
    names = [r.contender.name for r in shown][::-1]
    rps = [r.rps for r in shown][::-1]
    colors = [ROLE_COLORS[r.contender.role] for r in shown][::-1]
    figure, axis = plt.subplots(figsize=(11, 1.2 + 0.45 * len(shown)))
    bars = axis.barh(names, rps, color=colors)
    axis.bar_label(bars, labels=[f"{v:,.0f}" for v in rps], padding=4)
    axis.set_xlabel("requests per second (median of interleaved slices, higher is better)")
    figure.suptitle("POST /predict, the course's customer, wrk on loopback, 2 cores")
    axis.set_xlim(0, max(rps) * 1.2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine_facts(extra: dict) -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "load average (1, 5, 15 min) at start / end": (
            f"{_load(extra['load_before'])} / {_load(extra['load_after'])}"
        ),
        "python": platform.python_version(),
        "wrk": wrk_version(),
    }


def _load(averages: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in averages)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def write_report(args: argparse.Namespace, results: list[Result], extra: dict, report: str) -> None:
    args.output.mkdir(parents=True, exist_ok=True)
    chart(results, args.output / "benchmarks.png")
    header = "\n".join(f"- {key}: {value}" for key, value in machine_facts(extra).items())
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
        f"## Versions\n\n{versions(results)}\n\n"
        "## Goals\n\nThe performance goals for the whole service, judged on this run (the scorer's"
        " own targets are in `make bench-micro`, docs/performance.md).\n\n"
        f"{goals(results, extra)}\n" + image_section()
    )
    (args.output / "benchmarks.md").write_text(text)
    print(f"wrote {args.output / 'benchmarks.md'} and benchmarks.png")
