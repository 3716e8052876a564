"""What gunicorn.conf.py's hooks say and check at start-up, with a listening socket per worker
(``reuse_port``): a taken port stops start-up, and one line names where the service is."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any


def refuse_taken_ports(addresses: Iterable[Any]) -> None:
    """Stop, naming the address, if something already listens on one of ``addresses``: with
    SO_REUSEPORT a second server would not fail but quietly share the first one's port. A probe
    bound without it fails in exactly that case. Unix sockets (strings) are left to gunicorn."""
    for host, port, *_ in (address for address in addresses if isinstance(address, tuple)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise SystemExit(
                    f"churn-serving cannot start: cannot listen on {host}:{port} "
                    f"({error.strerror}); stop what uses it or set PORT to another port"
                ) from None


class HideEmptyListeningLine(logging.Filter):
    """Drops gunicorn's "Listening at:  (pid)", which names no address with per-worker sockets."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (record.msg == "Listening at: %s (%s)" and args and not args[0])


def listening_message(addresses: Iterable[Any], workers: int) -> str:
    """One line saying where the service listens, and the try-it page a newcomer opens."""
    bound, pages = [], []
    for address in addresses:
        if not isinstance(address, tuple):  # a unix socket path
            bound.append(f"unix:{address}")
            continue
        host, port = address[0], address[1]
        shown = f"[{host}]" if ":" in host else host
        bound.append(f"http://{shown}:{port}")
        local = "localhost" if host in ("0.0.0.0", "::") else shown  # noqa: S104 - a name
        pages.append(f"http://{local}:{port}/")
    page = f"; try it at {pages[0]}" if pages else ""
    return f"churn-serving listening on {', '.join(bound)} with {workers} worker(s){page}"
