"""Scale-out as Elastic Beanstalk runs it, on loopback: instances behind a load balancer.

    python -m bench.scale [--instances 2] [--seconds 12] [--no-drain]

Starts N gunicorn instances of the service and an nginx in front that, like EB's Application Load
Balancer, never retries a request on another instance. Drives nginx with wrk and, a third of the
way in, removes one instance the way a planned change does (scale-in, an Immutable deploy
retiring the old instances): the load balancer stops sending it new requests (deregistration:
nginx reloads without it, in-flight requests finish), then the instance gets SIGTERM. Reports
throughput and every failed request; exits non-zero if any client request failed.

A crashed instance is another matter: EB's load balancer does not retry its in-flight requests,
so they fail, and the client retries them (predict_test.py; README, Deploy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
            # EB's load balancer sends each request to one instance and never retries it.
            proxy_next_upstream off;
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


def drain_and_stop(server: Server, proxy: Server, conf: Path, port: int, others: list[int]):
    """Deregister ``server`` (nginx reloads without it; in-flight requests finish), then stop it.

    The load balancer's deregistration delay (DeregistrationDelay in .ebextensions) is the time
    between the two steps; a second is plenty for requests that take milliseconds.
    """
    write_nginx_conf(conf.parent, port, others)
    proxy.process.send_signal(signal.SIGHUP)  # nginx: reload, old workers finish what they hold
    time.sleep(DRAIN_SECONDS)
    server.process.terminate()  # gunicorn: graceful stop
    server.process.wait(timeout=30)


DRAIN_SECONDS = 1.0


def run(instance_count: int, seconds: float, drain: bool, work: Path) -> dict:
    wrk = require_wrk()
    body = work / "customer.json"
    body.write_text(json.dumps(EXAMPLE_CUSTOMER))
    with instances(instance_count, work) as servers:
        port = free_port()
        conf = write_nginx_conf(work / "nginx", port, [s.port for s in servers])
        command = [nginx_binary(), "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]
        with running(command, work, port=port) as proxy:
            stopper = None
            if drain:
                others = [s.port for s in servers[1:]]
                stopper = threading.Timer(
                    seconds / 3, drain_and_stop, args=(servers[0], proxy, conf, port, others)
                )
                stopper.start()
            # A connection per request: the ALB keeps its clients' connections whatever happens
            # to an instance, but nginx, standing in for it, closes idle ones when it reloads,
            # and wrk would count the request it was just sending on one as failed.
            result = run_wrk(
                wrk, proxy.url + "/predict", body, seconds, connections=16, close=drain
            )
            if stopper:
                stopper.join()
            stopped = servers[0].process.poll()
            result["drained_instance"] = drain and stopped is not None
            result["drained_exit_code"] = stopped
            result["drained_instance_served"] = '"path":"/predict"' in servers[0].output()
    result["instances"] = instance_count
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--no-drain", action="store_true", help="measure throughput only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = run(args.instances, args.seconds, not args.no_drain, Path(tmp))
    print(json.dumps(result))
    print(
        f"{args.instances} instances behind nginx: {result['rps']:,.0f} req/s, "
        f"p99 {result['p99_ms']:.1f} ms, {result['requests']:,} requests, "
        f"{result['errors']} failed"
        + (", one instance drained and stopped mid-load" if result["drained_instance"] else "")
        + f" ({time.monotonic() - started:.0f} s)"
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
