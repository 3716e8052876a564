"""nginx as Elastic Beanstalk runs it on a Docker instance, in front of a service on loopback.

The main configuration is shaped like the platform's /etc/nginx/nginx.conf on the Docker
platform (Amazon Linux 2023): an ``http`` block that includes ``conf.d/*.conf``, the ``docker``
upstream EB generates from the image's EXPOSEd port, and a default server with the platform's
own ``location /`` that includes ``conf.d/elasticbeanstalk/*.conf``. The project's
``.platform/nginx`` files go in place as EB copies them, so what is tested and benchmarked here
is what runs on an instance. Only the paths differ: the pid, the logs (EB's ``/var/log/nginx``)
and the temp folders live under a folder of the caller's, so no root-owned path is needed.

    with running(gunicorn_command(), work) as service, nginx_in_front(service.port, work) as proxy:
        urllib.request.urlopen(proxy.url + "/health")

Used by tests/test_nginx.py; the benchmark can put the same nginx in front of the server it
measures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.servers import free_port, stop
from churn.config import PROJECT_ROOT

PLATFORM_NGINX = PROJECT_ROOT / ".platform" / "nginx"
# Where EB's nginx writes its logs; the project's files name it, the rig puts a folder there.
EB_LOG_DIR = "/var/log/nginx"
CHURN_ACCESS_LOG = "churn-access.log"  # the JSON access log .platform/nginx names
TEMP_FOLDERS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")

# The platform's nginx.conf on the Docker platform, with the rig's paths ({prefix}, {logs}).
# `user` is the platform's `nginx` user there; as root here the workers stay root, so they can
# write under a caller's private temp folder.
MAIN_CONF = """\
{user}worker_processes auto;
error_log {logs}/error.log warn;
pid {prefix}/nginx.pid;

events {{
    worker_connections 1024;
}}

http {{
    server_tokens off;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for"';
    log_format healthd '$msec"$uri"$status"$request_time"$upstream_response_time"'
                       '$http_x_forwarded_for';

    # The rig's own paths (the platform uses the package's defaults under /var/lib/nginx).
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    include conf.d/*.conf;

    map $http_upgrade $connection_upgrade {{
        default "upgrade";
    }}

    server {{
        listen 127.0.0.1:{port} default_server;
        gzip on;
        gzip_comp_level 4;
        gzip_types text/plain text/css application/json application/x-javascript text/xml
                   application/xml application/xml+rss text/javascript;

        access_log {logs}/access.log main;

        location / {{
            proxy_pass http://docker;
            proxy_http_version 1.1;

            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        # Include the Elastic Beanstalk generated locations
        include conf.d/elasticbeanstalk/*.conf;
    }}
}}
"""

# What EB writes for the Docker platform: the container's address and EXPOSEd port.
UPSTREAM_CONF = """\
upstream docker {{
    server 127.0.0.1:{port};
    keepalive 256;
}}
"""

# Enhanced health reporting's log, which EB adds to the default server.
HEALTHD_CONF = "access_log {logs}/healthd/application.log healthd;\n"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError("nginx is not installed: `make system-deps` installs it")
    return found


@dataclass
class Proxy:
    process: subprocess.Popen
    port: int
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.prefix / "log"

    def access_lines(self) -> list[dict]:
        """nginx's JSON access log (the project's log format), one dict per request."""
        path = self.logs / CHURN_ACCESS_LOG
        text = path.read_text() if path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def error_log(self) -> str:
        return (self.logs / "error.log").read_text(errors="replace")


def write_instance(
    prefix: Path, port: int, upstream_port: int, changes: dict[str, str] | None = None
) -> Path:
    """The instance's nginx configuration under ``prefix``; the main file's path.

    ``changes``: text to replace in the project's files (a test that cannot wait for a shipped
    timeout); each must be found in them.
    """
    logs = prefix / "log"
    for folder in [logs / "healthd", prefix / "conf.d" / "elasticbeanstalk"] + [
        prefix / "tmp" / name for name in TEMP_FOLDERS
    ]:
        folder.mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = prefix / "nginx.conf"
    main.write_text(MAIN_CONF.format(user=user, prefix=prefix, logs=logs, port=port))
    generated = prefix / "conf.d" / "elasticbeanstalk-nginx-docker-upstream.conf"
    generated.write_text(UPSTREAM_CONF.format(port=upstream_port))
    (prefix / "conf.d" / "elasticbeanstalk" / "healthd.conf").write_text(
        HEALTHD_CONF.format(logs=logs)
    )
    # The project's files, where EB copies them (/etc/nginx/conf.d/...), logs moved to the rig's.
    unused = dict(changes or {})
    for source in PLATFORM_NGINX.glob("conf.d/**/*.conf"):
        text = source.read_text().replace(EB_LOG_DIR, str(logs))
        for old, new in (changes or {}).items():
            if old in text:
                text = text.replace(old, new)
                unused.pop(old, None)
        target = prefix / source.relative_to(PLATFORM_NGINX)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if unused:
        raise ValueError(f"not in the project's nginx files: {list(unused)}")
    return main


def nginx_command(main: Path) -> list[str]:
    return [nginx_binary(), "-p", str(main.parent), "-c", str(main), "-e", "stderr"]


def check_config(main: Path) -> None:
    """Stop with nginx's own words when the configuration does not load."""
    result = subprocess.run(
        [*nginx_command(main), "-t"], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"nginx refuses the configuration:\n{result.stderr}")


def wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nginx did not listen on {port} within {timeout} s")


@contextlib.contextmanager
def nginx_in_front(
    upstream_port: int,
    work: Path,
    port: int | None = None,
    changes: dict[str, str] | None = None,
) -> Iterator[Proxy]:
    """nginx configured as on an EB instance, proxying to ``upstream_port``; stopped after.

    ``changes``: see ``write_instance``.
    """
    port = port or free_port()
    prefix = work / f"nginx-{port}"
    main = write_instance(prefix, port, upstream_port, changes)
    check_config(main)
    with open(prefix / "log" / "stderr.log", "wb") as output:
        process = subprocess.Popen(
            [*nginx_command(main), "-g", "daemon off;"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proxy = Proxy(process, port, prefix)
    try:
        wait_until_listening(port, process)
        yield proxy
    finally:
        stop(process)
