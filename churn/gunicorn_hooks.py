"""gunicorn-specific checks, installed by gunicorn.conf.py: a taken port stops start-up."""

from __future__ import annotations

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
