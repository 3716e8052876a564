"""gunicorn settings for churn-serving, used by `make run`, the Dockerfile and the benchmarks.

The values come from churn/config.py's ``Settings`` (README, Configuration), where each
variable's name, default and bounds are defined once; this file says why each is set as it is.
"""

import os
import sys
import tempfile
from pathlib import Path

from churn import gunicorn_hooks
from churn.config import ConfigError, Settings

try:
    settings = Settings.from_env()
except ConfigError as error:
    sys.exit(f"churn-serving cannot start: {error}")

# Prometheus multiprocess mode: every worker writes its samples under this folder and /metrics
# adds them up. It must be set before the app (and prometheus_client) is imported.
_metrics_dir = settings.metrics_dir or Path(tempfile.mkdtemp(prefix="churn-metrics-"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
for stale in _metrics_dir.glob("*.db"):  # counts from a previous run would be added in
    stale.unlink()

# EB's nginx and `docker run -p 9696:9696` reach the container on this port.
bind = f"{settings.host}:{settings.port}"

# One listening socket per worker (SO_REUSEPORT), so the kernel spreads new connections over
# the workers. With one shared socket, whichever worker was awake took the connections, and with
# keep-alive it kept them: in benchmark slices one worker often served everything while the
# other sat idle (docs/performance.md). GUNICORN_REUSE_PORT=0 goes back to the shared socket.
reuse_port = settings.reuse_port

# Scoring is CPU-bound and takes microseconds, so one process per core keeps every core busy
# without context-switch overhead.
workers = settings.workers

# Load the model once in the master: a bad model file stops start-up before any worker boots,
# and the workers share the loaded pages copy-on-write.
preload_app = True

# Threaded workers keep connections alive between requests: the sync worker closes each
# connection and waits for the client to hang up, which cost a fifth of a loaded worker's time
# (docs/performance.md). Two threads per worker: four gave the same throughput with a worse p99
# (more handlers contending for the GIL).
worker_class = "gthread"
threads = settings.threads

# Each worker's heartbeat touches a temporary file on every loop; on a container's disk-backed
# /tmp that can stall a worker (gunicorn's FAQ, "Blocking OS calls"), so the file goes to
# memory-backed /dev/shm where there is one.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs on purpose

keepalive = settings.keepalive
timeout = settings.timeout
# Docker and EB send SIGTERM on deploy and `docker stop` sends SIGKILL 10 s later. At SIGTERM a
# worker stops accepting, finishes what it has accepted (the longest, a 1,000-customer batch,
# takes ~50 ms) and closes its kept-alive connections within 2 s; it gets at most 8 s, which
# leaves the master time to exit 0 before the SIGKILL (README, Docker).
graceful_timeout = settings.graceful_timeout

accesslog = settings.access_log  # None: no access log (the image's default: EB's nginx logs)
errorlog = "-"
# JSON lines for machines, text lines in a terminal; the access line names the request id.
# Named, not imported: churn.logs imports prometheus_client, which must come after the folder.
logger_class = {"json": "churn.logs.JsonLogger", "text": "churn.logs.TextLogger"}[
    settings.log_format
]
loglevel = settings.log_level

# gunicorn 24+ opens a control socket under $HOME; the service needs none, and the container's
# unprivileged user may have no writable home.
control_socket_disable = True


def on_starting(server):
    """With per-worker sockets a taken port would not fail start-up: check it in the master."""
    if server.cfg.reuse_port:
        gunicorn_hooks.refuse_taken_ports(server.cfg.address)
        server.log.error_log.addFilter(gunicorn_hooks.HideEmptyListeningLine())


def child_exit(server, worker):
    """Drop a dead worker's live gauge samples (model info, drift reference: ``live*`` modes)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    """Say where the service is: gunicorn's "Listening at:" names no address with reuse_port."""
    server.log.info(gunicorn_hooks.listening_message(server.cfg.address, server.cfg.workers))
