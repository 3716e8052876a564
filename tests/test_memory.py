"""Freed memory is reused, not faulted in again (churn/memory.py), in every gunicorn process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from churn.config import PROJECT_ROOT

# A process that sets up as asked, then allocates four numpy arrays of ~625 KiB at a time (the
# size of the drift and shadow flush's temporaries) and frees them, 100 times: its page faults.
CHURNING = """
import resource, runpy, sys
import numpy as np
if sys.argv[1] == "keep_freed_memory":
    from churn.memory import keep_freed_memory
    assert keep_freed_memory()
elif sys.argv[1] == "gunicorn.conf.py":
    runpy.run_path("gunicorn.conf.py")
def churn():
    kept = [np.ones(80_000) for _ in range(4)]
    return sum(float(a[0]) for a in kept)
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(set_up: str, tmp_path) -> int:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", CHURNING, set_up],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_memory_is_reused_once_set_and_gunicorn_conf_sets_it(tmp_path):
    # 100 rounds x 4 arrays x ~153 pages each, faulted in afresh without the setting
    assert page_faults("nothing", tmp_path) > 20_000
    assert page_faults("keep_freed_memory", tmp_path) < 500
    assert page_faults("gunicorn.conf.py", tmp_path) < 500
