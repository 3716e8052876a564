"""Driving load and watching workers: wrk on loopback, and each worker's CPU and memory from /proc.

Shared by the benchmark (bench/run.py) and the tests that load a server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

LUA = Path(__file__).resolve().parent / "post.lua"


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed: `make system-deps` (or `apt-get install wrk`) installs it.")
    return wrk


def run_wrk(
    wrk: str, url: str, body_file: Path, seconds: float, connections: int, close: bool = False
) -> dict:
    """One wrk run POSTing ``body_file`` to ``url``: req/s, p50/p99 and errors by kind.

    ``close``: a new connection per request, instead of keep-alive.
    """
    command = [
        wrk,
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(body_file),
        *(["close"] if close else []),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    summary = json.loads(output.stdout.strip().splitlines()[-1])
    error_kinds = {
        k: v for k, v in summary.items() if (k.endswith("_errors") or k == "timeouts") and v
    }
    return {
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": sum(error_kinds.values()),
        "error_kinds": error_kinds,
        "requests": summary["requests"],
    }


def worker_status(master_pid: int) -> dict[int, dict[str, str]]:
    """The /proc status fields of each child process of ``master_pid``, by pid."""
    workers = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue  # the process ended while being read
        if int(fields.get("PPid", "0")) == master_pid:
            workers[int(status.parent.name)] = fields
    return workers


def worker_rss_mib(master_pid: int) -> list[float]:
    """Resident memory of each child process of ``master_pid``."""
    sizes = [
        int(fields["VmRSS"].split()[0]) / 1024
        for fields in worker_status(master_pid).values()
        if "VmRSS" in fields
    ]
    return sorted(sizes)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far; 0 if it is gone."""
    try:
        # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and its children (the workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in worker_status(pid))
