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
    """One wrk run POSTing ``body_file`` to ``url`` (``close``: a connection per request):
    req/s, p50/p99 and errors by kind."""
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


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and its children (the workers)."""
    total = 0.0
    for process in (pid, *workers_of(pid)):
        with contextlib.suppress(OSError):  # gone: it used no more
            # After the parenthesised command name, utime and stime are the 12th and 13th fields.
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")
