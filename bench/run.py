"""`make bench`: this service against the course's way, the ceiling and the peers, in one run.

    python -m bench.run                 # 15 rounds of 3 s slices; writes docs/benchmarks.*
    python -m bench.run --smoke         # 1 s per server: checks every server answers correctly
    python -m bench.run --no-build      # peers only if their environments are already built

Every server gets the same workers, connections and slices, driven by wrk on loopback with the
course's standard customer. The floors are ratios against rows measured in the same rounds,
because the machine is shared and absolute numbers drift. The rows are in bench/contenders.py,
the measuring in bench/measure.py, the floors and the report in bench/report.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.load import require_wrk
from bench.measure import measure
from bench.report import BATCH_1000_MS_MAX, floors, judge, table, versions, write_report
from churn.config import PROJECT_ROOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="1 s per server, 1 round, no report")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one wrk slice")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of slices")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs", help="report folder")
    parser.add_argument("--json", type=Path, help="also write the rows and the floors here")
    parser.add_argument("--no-build", action="store_true", help="do not build peer environments")
    parser.add_argument(
        "--no-containers",
        dest="containers",
        action="store_false",
        help="leave out the rows in the container (they start a private Docker engine: root)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.containers = 1.0, 1, False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        results, batch_ms = measure(args, wrk, Path(tmp))
    text = f"{table(results)}\n\n## Floors\n\n{floors(results, batch_ms)}\n\n"
    text += f"## Versions\n\n{versions()}"
    print(text)
    if args.json:
        rows = [
            {"key": r.contender.key, "name": r.contender.name, "unavailable": r.unavailable,
             "rps": [run["rps"] for run in r.runs], "errors": r.errors if r.runs else None}
            for r in results
        ]  # fmt: skip
        batch = {"server_ms": batch_ms, "most_ms": BATCH_1000_MS_MAX}
        args.json.write_text(json.dumps({"rows": rows, "floors": judge(results), "batch": batch}))
    # A peer's errors are its own result, shown in the table; ours or a baseline's fail the run.
    failed = [r.contender.name for r in results if r.errors and not r.contender.peer]
    if failed:
        print(f"error: these servers returned errors under load: {failed}", file=sys.stderr)
        return 1
    if not args.smoke:
        write_report(args, results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
