"""`make bench`: this service against the course's way, the ceiling and the peers, in one run.

    python -m bench.run                 # full run: 15 rounds of 3 s slices, docs/benchmarks.*
    python -m bench.run --smoke         # 1 s per server: checks every server answers correctly
    python -m bench.run --no-build      # peers only if their environments are already built

Every server gets the same workers, connections and duration, driven by wrk on loopback with
the course's standard customer. Ratios are against baselines measured in the same run, because
the machine is shared and absolute numbers drift. The rows are in bench/contenders.py, the
measuring in bench/measure.py, the report in bench/report.py; the peers (FastAPI, BentoML,
MLServer) run in their own virtual environments, built on first use (bench/peers/envs.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.contenders import Role
from bench.load import require_wrk
from bench.measure import measure
from bench.report import goals, table, versions, write_report
from churn.config import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="1 s per server, 1 run, no report")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one wrk slice")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of slices")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=DOCS, help="folder for benchmarks.md/png")
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="do not build missing peer environments (needs PyPI); report those peers as not built",
    )
    parser.add_argument(
        "--no-containers",
        dest="containers",
        action="store_false",
        help="leave out the rows in the container (they start a private Docker engine; root)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.containers = 1.0, 1, False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        results, extra = measure(args, wrk, Path(tmp))
    report = table(results)
    print(report)
    print(f"- 1,000-customer batch, server time: {extra['batch_1000_server_ms']:.1f} ms")
    print(goals(results, extra))
    print(versions(results))
    print(f"load average before / after: {extra['load_before']} / {extra['load_after']}")
    # A peer's errors are its own result, shown in the table; ours or a baseline's fail the run.
    failed = [r.contender.name for r in results if r.errors and r.contender.role is not Role.PEER]
    if failed:
        print(f"error: these servers returned errors under load: {failed}", file=sys.stderr)
        return 1
    if not args.smoke:
        write_report(args, results, extra, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
