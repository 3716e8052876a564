"""gunicorn settings for churn-serving, used by `make run`, the Dockerfile and the benchmarks.

Everything here can be set through the environment (README, Configuration).
"""

import multiprocessing
import os

# EB's nginx and `docker run -p 9696:9696` reach the container on this port.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '9696')}"  # noqa: S104 - a container must listen beyond loopback

# Scoring is CPU-bound and takes microseconds, so one process per core keeps every core busy
# without context-switch overhead.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))

# Load the model once in the master: a bad model file stops start-up before any worker boots,
# and the workers share the loaded pages copy-on-write.
preload_app = True

keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Docker and EB send SIGTERM on deploy: in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))

accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

# gunicorn 24+ opens a control socket under $HOME; the service needs none, and the container's
# unprivileged user may have no writable home.
control_socket_disable = True
