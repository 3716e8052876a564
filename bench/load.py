"""Driving load and watching workers: wrk on loopback, each worker's CPU and memory from /proc."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.servers import workers_of

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
    command = [wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    command += ["-s", str(LUA), url, "--", str(body_file), *(["close"] if close else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    summary = json.loads(output.stdout.strip().splitlines()[-1])
    kinds = {k: v for k, v in summary.items() if (k.endswith("_errors") or k == "timeouts") and v}
    return {
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
        "requests": summary["requests"],
    }


def worker_rss_mib(master_pid: int) -> list[float]:
    """Resident memory of each child process of ``master_pid``, smallest first."""
    sizes = []
    for pid in workers_of(master_pid):
        with contextlib.suppress(OSError):  # the process ended while being read
            found = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
            sizes += [int(found[1]) / 1024] if found else []
    return sorted(sizes)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far; 0 if it is gone."""
    try:
        # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """CPU time used so far by process ``pid`` and its children (the workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in workers_of(pid))
