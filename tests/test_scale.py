"""Scale-out as Elastic Beanstalk runs it: a planned instance removal under load loses nothing.

Two gunicorn instances behind nginx, standing in for EB's load balancer, which never retries a
request on another instance. What keeps a planned change (scale-in, an immutable deploy)
lossless is the drain: deregister (nginx reloads without the instance, its in-flight requests
finish), then SIGTERM. A crashed instance's in-flight requests do fail; the client's retries
cover those (tests/test_client.py).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from bench.load import require_wrk, run_wrk
from bench.servers import Server, free_port, gunicorn_command, running
from churn.features import EXAMPLE_CUSTOMER

pytestmark = [pytest.mark.slow, pytest.mark.nginx]

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
            # EB's load balancer sends each request to one instance and never retries it.
            proxy_next_upstream off;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
        }}
    }}
}}
"""
DRAIN_SECONDS = 1.0  # the load balancer's deregistration delay: plenty for millisecond requests


def write_nginx_conf(prefix: Path, port: int, upstream_ports: list[int]) -> Path:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        folder = prefix / "tmp" / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # nginx workers drop to an unprivileged user when started as root
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1;" for p in upstream_ports)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, servers=servers))
    return conf


def drain_and_stop(server: Server, proxy: Server, conf: Path, port: int, others: list[int]):
    write_nginx_conf(conf.parent, port, others)
    proxy.process.send_signal(signal.SIGHUP)  # nginx reloads; old workers finish what they hold
    time.sleep(DRAIN_SECONDS)
    server.process.terminate()  # gunicorn: graceful stop
    server.process.wait(timeout=30)


def test_draining_then_stopping_an_instance_mid_load_fails_no_request(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    body = tmp_path / "customer.json"
    body.write_text(json.dumps(EXAMPLE_CUSTOMER))
    with contextlib.ExitStack() as stack:
        one = {"WEB_CONCURRENCY": "1"}
        servers = [stack.enter_context(running(gunicorn_command(), tmp_path, one)) for _ in "ab"]
        port = free_port()
        conf = write_nginx_conf(tmp_path / "nginx", port, [s.port for s in servers])
        command = [nginx, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]
        proxy = stack.enter_context(running(command, tmp_path, port=port))
        others = [s.port for s in servers[1:]]
        args = (servers[0], proxy, conf, port, others)
        stopper = threading.Timer(8 / 3, drain_and_stop, args=args)
        stopper.start()
        # A connection per request: nginx, standing in for the ALB, closes idle connections
        # when it reloads (the ALB keeps its clients'), and wrk would count the request it was
        # just sending on one as failed.
        result = run_wrk(require_wrk(), proxy.url + "/predict", body, 8, 16, close=True)
        stopper.join()
        assert servers[0].process.poll() == 0  # stopped gracefully during the load, not killed
        assert '"path":"/predict"' in servers[0].output()  # and it had served traffic
    assert result["requests"] > 1000
    assert result["errors"] == 0, result["error_kinds"]
