"""gunicorn hooks' logic, called from gunicorn.conf.py: a taken port stops start-up, and the
address the service listens on (and its try-it page) is announced once it is ready."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any


def refuse_taken_ports(addresses: Iterable[Any]) -> None:
    """Stop start-up, naming the address, if something already listens on one of ``addresses``.

    With ``reuse_port`` every worker binds its own socket with SO_REUSEPORT, so a second server
    started on a port the first one serves would not fail: it would quietly take part of the
    first one's connections. A probe bound without SO_REUSEPORT fails in exactly that case.
    Unix-socket addresses (strings) are left to gunicorn.
    """
    for address in addresses:
        if not isinstance(address, tuple):
            continue
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise SystemExit(
                    f"churn-serving cannot start: cannot listen on {host}:{port} "
                    f"({error.strerror}); stop what uses it or set PORT to another port"
                ) from None


# A wildcard host is reachable from this machine as localhost: that is the URL a newcomer opens.
_LOCAL_NAMES = {"0.0.0.0": "localhost", "::": "localhost"}  # noqa: S104 - names, not binding


class HideEmptyListeningLine(logging.Filter):
    """Drops gunicorn's "Listening at:  (pid)" when it names no address (per-worker sockets),
    so the first address a newcomer reads is the real one from ``listening_message``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (record.msg == "Listening at: %s (%s)" and args and not args[0])


def listening_message(addresses: Iterable[Any], workers: int) -> str:
    """One line saying where the service listens and where its try-it page is.

    gunicorn's own "Listening at:" line is empty with per-worker sockets (the master holds no
    listener to name), so this one says it instead.
    """
    bound, pages = [], []
    for address in addresses:
        if not isinstance(address, tuple):  # a unix socket path
            bound.append(f"unix:{address}")
            continue
        host, port = address[0], address[1]
        shown = f"[{host}]" if ":" in host else host
        bound.append(f"http://{shown}:{port}")
        pages.append(f"http://{_LOCAL_NAMES.get(host, shown)}:{port}/")
    where = ", ".join(bound)
    page = f"; try it at {pages[0]}" if pages else ""
    return f"churn-serving listening on {where} with {workers} worker(s){page}"
