"""gunicorn hooks' logic, used by gunicorn.conf.py: a taken port stops start-up, the address the
service listens on (and its try-it page) is announced once it is ready, and the worker stops
listening the moment it is told to stop."""

from __future__ import annotations

import ctypes
import logging
import select
import socket
import struct
import sys
import time
from collections.abc import Iterable
from typing import Any

from gunicorn.workers.gthread import ThreadWorker


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


class PromptlyClosingThreadWorker(ThreadWorker):
    """gunicorn's threaded worker, which closes its listening sockets as soon as SIGTERM comes
    (the signal wakes the worker's loop, which closes them as it ends).

    gunicorn's own worker only stops polling them and closes them after its in-flight requests
    are done; meanwhile the kernel keeps completing handshakes into their backlog, and those
    connections are reset at the close (21-31 per `docker stop` under load, issue 11). Closed at
    once, a connection that arrives after the SIGTERM is refused, so a client or proxy can go
    elsewhere straight away. What is already waiting in the backlog is accepted and served first;
    the kernel is told to stop completing handshakes before that, so the backlog cannot grow
    between the last accept and the close (see ``stop_new_handshakes``).
    """

    sockets: list[Any]  # set by gunicorn's Worker
    _accepting: bool  # set by gunicorn's ThreadWorker

    def set_accept_enabled(self, enabled: bool) -> None:
        """Close the listeners for good once the worker is stopping.

        The SIGTERM handler only marks the worker as stopping and wakes its loop; the loop then
        calls this as it ends. Closing the listeners in the handler itself, as this class once
        did, broke the worker when the signal landed between an accept and gunicorn's next use
        of the listener: the handler had closed it ("'NoneType' object has no attribute
        'getsockname'", the worker exiting with 255 and the connection just accepted lost).
        """
        if not self.alive:
            self._stop_listening()
            return
        super().set_accept_enabled(enabled)

    def _stop_listening(self) -> None:
        listeners, self.sockets = self.sockets, []
        for listener in listeners:
            stop_new_handshakes(listener)
            if self._accepting:
                self.poller.unregister(listener)
                self._accept_the_last(listener)
            listener.close()
        self._accepting = False

    def _accept_the_last(self, listener: socket.socket) -> None:
        """Accept the handshakes done, and those ending within ``HANDSHAKE_SETTLE_SECONDS``."""
        deadline = time.monotonic() + HANDSHAKE_SETTLE_SECONDS
        while select.select([listener], [], [], max(0.0, deadline - time.monotonic()))[0]:
            self.accept(listener)


# Classic BPF on a TCP listener, where a packet starts at its TCP header: keep the packets with
# the ACK flag (byte 13, bit 0x10), which end a handshake already begun, and drop the rest, above
# all the SYNs that would begin new ones. (struct sock_filter: code, jt, jf, k.)
_KEEP_HANDSHAKE_ENDINGS = b"".join(
    struct.pack("HBBI", *instruction)
    for instruction in (
        (0x30, 0, 0, 13),  # BPF_LD | BPF_B | BPF_ABS: the flags byte
        (0x45, 0, 1, 0x10),  # BPF_JMP | BPF_JSET | BPF_K: ACK set? next : skip one
        (0x06, 0, 0, 0xFFFFFFFF),  # BPF_RET | BPF_K: keep the whole packet
        (0x06, 0, 0, 0),  # BPF_RET | BPF_K: keep no byte, drop it
    )
)
_SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; Python's socket module does not name it
# How long a stopping worker still accepts handshakes that end after it stopped new ones: a
# client's ACK follows the SYN-ACK within a round trip (microseconds on loopback or EB's host).
HANDSHAKE_SETTLE_SECONDS = 0.05


def stop_new_handshakes(listener: socket.socket) -> None:
    """Make the kernel drop the SYNs that reach ``listener``; handshakes already begun end.

    Between a worker's last ``accept`` and its ``close`` the kernel can still complete a
    handshake into the backlog, and ``close`` resets it: seen once in CI as a request reset during
    ``docker stop``, as the request threads can hold the GIL for milliseconds there. With this
    filter no new handshake begins. One begun just before (the client already has its SYN-ACK,
    and believes it is connected) still ends, so the worker accepts what arrives for
    ``HANDSHAKE_SETTLE_SECONDS`` before it closes. A client whose SYN was dropped sends it again
    about a second later, by when this socket is closed: it is refused, or served by a worker
    still listening. Linux only; elsewhere the short race stays.
    """
    if sys.platform != "linux" or listener.family not in (socket.AF_INET, socket.AF_INET6):
        return
    program = ctypes.create_string_buffer(_KEEP_HANDSHAKE_ENDINGS)
    length = len(_KEEP_HANDSHAKE_ENDINGS) // 8
    fprog = struct.pack("HL", length, ctypes.addressof(program))  # struct sock_fprog
    try:
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:  # a kernel without socket filters: keep the old, racy behaviour
        return
