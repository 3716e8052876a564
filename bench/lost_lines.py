"""Whether any access line is lost at `docker stop` under load, counted exactly, request by request.

    python -m bench.lost_lines [--stops 5] [--seconds 8] [--stop-after 3] [--connections 16]
        [--log-driver json-file]

For each stop: a new container of the image (the private engine of bench/engine.py, as `make
bench` builds it), wrk at full speed with a unique X-Request-ID on every request recording the id
of every answer it receives (bench/ids.lua), `docker stop` mid-load, then the answered ids are
compared with the request ids of the access lines in `docker logs`. An answered id without its
line is a lost line. Issue 11 and docs/performance.md quote it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.container_rows import IMAGE_TAG, engine_with_image
from bench.engine import Engine
from bench.load import RecordingWrk, require_wrk
from bench.servers import free_port, poll
from churn.features import EXAMPLE_CUSTOMER


def logged_request_ids(logs: str) -> tuple[list[str], list[str]]:
    """The request id of every access line in a container's output, and the lines that are not
    JSON (two lines written into each other)."""
    ids, broken = [], []
    for line in logs.splitlines():
        if '"logger":"access"' in line:
            try:
                ids.append(json.loads(line)["request_id"])
            except ValueError:
                broken.append(line)
    return ids, broken


def one_stop(engine: Engine, args: argparse.Namespace, body: Path) -> dict:
    port = free_port()
    container = engine.docker(
        "run", "--detach", "--network=host", "--env=HOST=127.0.0.1", f"--env=PORT={port}",
        f"--env=WEB_CONCURRENCY={args.workers}", f"--log-driver={args.log_driver}", IMAGE_TAG,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/predict"
    poll(lambda: "Booting worker" in engine.logs(container), bool, 60, 0.3)
    poll(lambda: _serves(url), bool, 60, 0.3)
    wrk = RecordingWrk(args.wrk, url, body, args.seconds, args.connections)
    time.sleep(args.stop_after)
    began = time.monotonic()
    engine.docker("stop", container, timeout=60)
    stop_seconds = time.monotonic() - began
    answered = set(wrk.answered())
    logged_ids, broken = logged_request_ids(engine.logs(container))
    logged = set(logged_ids)
    exit_code = engine.docker("inspect", "--format", "{{.State.ExitCode}}", container)
    engine.docker("rm", container)
    return {
        "answered": len(answered),
        "logged": len(logged & answered),
        "lost": sorted(answered - logged),
        "broken": len(broken),
        "stop_s": stop_seconds,
        "exit": exit_code,
    }


def _serves(url: str) -> bool:
    from bench.measure import post

    try:
        return post(url, json.dumps(EXAMPLE_CUSTOMER).encode())[0] == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stops", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk's duration")
    parser.add_argument("--stop-after", type=float, default=3.0, help="seconds of load first")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-driver", default="json-file", help="the engine's: json-file, local")
    args = parser.parse_args()
    args.wrk = require_wrk()
    engine = engine_with_image(empty_engine_build=False)
    print(f"load average {os.getloadavg()[0]:.1f}, log driver {args.log_driver}")
    print("| stop | answered | logged | lost | broken lines | docker stop s | exit code |")
    print("| --- |" + " --- |" * 6)
    with tempfile.TemporaryDirectory(prefix="churn-lost-lines-") as work:
        body = Path(work) / "customer.json"
        body.write_text(json.dumps(EXAMPLE_CUSTOMER))
        for number in range(1, args.stops + 1):
            result = one_stop(engine, args, body)
            print(
                f"| {number} | {result['answered']:,} | {result['logged']:,} | "
                f"{len(result['lost'])} {result['lost'][:3]} | {result['broken']} | "
                f"{result['stop_s']:.2f} | "
                f"{result['exit']} |",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
