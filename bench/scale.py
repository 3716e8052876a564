"""Scale-out as Elastic Beanstalk runs it, on loopback: several instances behind nginx.

    python -m bench.scale [--instances 2] [--seconds 12] [--no-kill]

Starts N gunicorn instances of the service and an nginx in front (upstream with
proxy_next_upstream, as a load balancer retries another target), drives nginx with wrk, and a
third of the way in kills one instance outright (SIGKILL to its whole process group). Reports
throughput and every failed request; exits non-zero if any client request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.load import require_wrk, run_wrk
from bench.servers import Server, free_port, gunicorn_command, running
from churn.features import EXAMPLE_CUSTOMER

NGINX_CONF = """\
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    upstream churn {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://churn;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Request-ID $request_id;
            # /predict has no side effects, so a POST that died with its instance is safe to
            # send to another one: that is what keeps a lost instance invisible to clients.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        sys.exit("nginx is not installed: `make system-deps` (or `apt-get install nginx-light`).")
    return found


def write_nginx_conf(prefix: Path, port: int, upstream_ports: list[int]) -> Path:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        folder = prefix / "tmp" / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # nginx workers drop to an unprivileged user when started as root
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in upstream_ports
    )
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, servers=servers))
    return conf


@contextlib.contextmanager
def instances(count: int, work: Path) -> Iterator[list[Server]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(running(gunicorn_command(), work, env={"WEB_CONCURRENCY": "1"}))
            for _ in range(count)
        ]


def kill_instance(server: Server) -> None:
    """SIGKILL the instance's master and workers at once, as a lost machine would vanish."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()


def run(instance_count: int, seconds: float, kill: bool, work: Path) -> dict:
    wrk = require_wrk()
    body = work / "customer.json"
    body.write_text(json.dumps(EXAMPLE_CUSTOMER))
    with instances(instance_count, work) as servers:
        port = free_port()
        conf = write_nginx_conf(work / "nginx", port, [s.port for s in servers])
        command = [nginx_binary(), "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]
        with running(command, work, port=port) as proxy:
            killer = None
            if kill:
                killer = threading.Timer(seconds / 3, kill_instance, args=(servers[0],))
                killer.start()
            result = run_wrk(wrk, proxy.url + "/predict", body, seconds, connections=16)
            if killer:
                killer.join()
            result["killed_instance"] = kill and servers[0].process.poll() is not None
    result["instances"] = instance_count
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--no-kill", action="store_true", help="measure throughput only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = run(args.instances, args.seconds, not args.no_kill, Path(tmp))
    print(json.dumps(result))
    print(
        f"{args.instances} instances behind nginx: {result['rps']:,.0f} req/s, "
        f"p99 {result['p99_ms']:.1f} ms, {result['requests']:,} requests, "
        f"{result['errors']} failed"
        + (", one instance killed mid-load" if result["killed_instance"] else "")
        + f" ({time.monotonic() - started:.0f} s)"
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
