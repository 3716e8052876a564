"""nginx as Elastic Beanstalk runs it on a Docker instance, in front of a service on loopback.

The main file is shaped like the platform's /etc/nginx/nginx.conf (Docker on Amazon Linux 2023),
with the ``docker`` upstream EB generates from the EXPOSEd port; the project's ``.platform/nginx``
files go where EB copies them. Only the pid, log and temp paths differ: they live under a folder
of the caller's, so no root-owned path is needed. Used by tests/test_nginx.py and `make bench`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.servers import Server, free_port, poll, stop
from churn.config import PROJECT_ROOT

PLATFORM_NGINX = PROJECT_ROOT / ".platform" / "nginx"
# Where EB's nginx writes its logs; the project's files name it, the rig puts a folder there.
EB_LOG_DIR = "/var/log/nginx"
CHURN_ACCESS_LOG = "churn-access.log"  # the JSON access log .platform/nginx names

# The platform's nginx.conf with the rig's paths. Its `user` is `nginx` there; as root here the
# workers stay root, so they can write under the caller's private temp folder.
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


class Proxy(Server):
    """nginx running, its stderr in ``log``, beside its other logs."""

    def access_lines(self) -> list[dict]:
        """nginx's JSON access log (the project's log format), one dict per request."""
        path = self.log.parent / CHURN_ACCESS_LOG
        text = path.read_text() if path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_instance(prefix: Path, port: int, upstream_port: int, changes: dict[str, str]) -> Path:
    """The instance's nginx configuration under ``prefix``; the main file's path.

    ``changes``: text to replace in the project's files (a test that cannot wait for a shipped
    timeout); each must be found in them.
    """
    logs = prefix / "log"
    temp = [prefix / "tmp" / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")]
    for folder in [logs / "healthd", prefix / "conf.d" / "elasticbeanstalk", *temp]:
        folder.mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = prefix / "nginx.conf"
    main.write_text(MAIN_CONF.format(user=user, prefix=prefix, logs=logs, port=port))
    generated = prefix / "conf.d" / "elasticbeanstalk-nginx-docker-upstream.conf"
    generated.write_text(UPSTREAM_CONF.format(port=upstream_port))
    healthd = prefix / "conf.d" / "elasticbeanstalk" / "healthd.conf"
    healthd.write_text(HEALTHD_CONF.format(logs=logs))
    # The project's files, where EB copies them (/etc/nginx/conf.d/...), logs moved to the rig's.
    unused = set(changes)
    for source in PLATFORM_NGINX.glob("conf.d/**/*.conf"):
        text = source.read_text().replace(EB_LOG_DIR, str(logs))
        for old, new in changes.items():
            if old in text:
                unused.discard(old)
                text = text.replace(old, new)
        target = prefix / source.relative_to(PLATFORM_NGINX)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if unused:
        raise ValueError(f"not in the project's nginx files: {sorted(unused)}")
    return main


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


@contextlib.contextmanager
def nginx_in_front(
    upstream_port: int, work: Path, changes: dict[str, str] | None = None
) -> Iterator[Proxy]:
    """nginx configured as on an EB instance, proxying to ``upstream_port``; stopped after.

    ``changes``: see ``write_instance``.
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise RuntimeError("nginx is not installed: `make system-deps` installs it")
    port = free_port()
    prefix = work / f"nginx-{port}"
    main = write_instance(prefix, port, upstream_port, changes or {})
    command = [nginx, "-p", str(prefix), "-c", str(main), "-e", "stderr"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=60)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refuses the configuration:\n{checked.stderr}")
    with open(prefix / "log" / "stderr.log", "wb") as output:
        process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        up = poll(lambda: listening(port) or process.poll() is not None, bool, 20, 0.02)
        if not up or process.poll() is not None:
            raise RuntimeError(f"nginx did not listen on {port} (exit code {process.poll()})")
        yield Proxy(process, port, prefix / "log" / "stderr.log")
    finally:
        stop(process)
