"""gunicorn-specific behaviour, installed by gunicorn.conf.py: response writing and port checks.

gunicorn writes a response's status line and headers with one ``sendall`` and its body with
another. If the process dies between the two (a killed worker, a lost instance), a proxy in front
has already passed the headers on and can no longer retry the request elsewhere: the client gets
a truncated response. Writing headers and a fixed-length body together closes that window, which
is what lets nginx/ELB retries hide a dead instance completely (tests/test_scale.py).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi


class CoalescingResponse(wsgi.Response):
    """A gunicorn Response whose first body write carries the headers in the same ``sendall``.

    Only ``write`` coalesces; every other path (sendfile, close) sends headers as gunicorn does.
    """

    _coalescing = False
    _pending_headers = b""

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = self.default_headers()
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        header_bytes = util.to_bytestring("".join(lines) + "\r\n", "latin-1")
        self.headers_sent = True
        if self._coalescing:
            self._pending_headers = header_bytes
        else:
            util.write(self.sock, header_bytes)

    def write(self, arg: bytes) -> None:
        self._coalescing = True
        try:
            super().write(arg)
        finally:
            self._coalescing = False
            self._flush_headers()  # a body-less response (HEAD, 204, 304) still needs them

    def _emit_body(self, data: bytes) -> None:
        if self._pending_headers and not self.chunked:
            pending, self._pending_headers = self._pending_headers, b""
            self.sock.sendall(pending + data)
            return
        self._flush_headers()
        super()._emit_body(data)

    def _flush_headers(self) -> None:
        if self._pending_headers:
            pending, self._pending_headers = self._pending_headers, b""
            util.write(self.sock, pending)


def install() -> None:
    """Make gunicorn's workers build CoalescingResponse objects."""
    wsgi.Response = CoalescingResponse


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
