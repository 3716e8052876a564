"""gunicorn hooks' logic, used by gunicorn.conf.py: a taken port stops start-up, the address the
service listens on (and its try-it page) is announced once it is ready, and the worker stops
listening the moment it is told to stop."""

from __future__ import annotations

import ctypes
import logging
import os
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
            # Even when gunicorn stopped accepting (its worker_connections reached): what
            # waits in the backlog is served late rather than reset by the close.
            self._accept_the_last(listener)
            listener.close()
        self._accepting = False

    def _accept_the_last(self, listener: socket.socket) -> None:
        """Accept the handshakes done, and those still under way as they end (for at most
        ``HANDSHAKE_SETTLE_SECONDS``). Waiting only while one is under way matters: until the
        close, a newcomer's SYN is dropped and it waits a second for its retry to be refused."""
        tcp = listener.family in _TCP_FAMILIES  # a unix socket has no handshake
        port = listener.getsockname()[1] if tcp else 0
        deadline = time.monotonic() + HANDSHAKE_SETTLE_SECONDS
        while True:
            # Asked before the last look at the backlog: a handshake that ends meanwhile is there.
            under_way = tcp and handshakes_under_way(port, listener.family)
            while select.select([listener], [], [], 0)[0]:
                self.accept(listener)
            remaining = deadline - time.monotonic()
            if not under_way or remaining <= 0:
                return
            select.select([listener], [], [], min(remaining, 0.001))


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
# How long a stopping worker waits at most for handshakes under way to end: a client's ACK
# follows the SYN-ACK within a round trip (microseconds on loopback or EB's host).
HANDSHAKE_SETTLE_SECONDS = 0.05


# Asking the kernel (sock_diag over netlink, what `ss` uses) for the TCP sockets in the state
# between the SYN-ACK and the client's ACK: TCP_SYN_RECV, and TCP_NEW_SYN_RECV for the requests
# a listener keeps (<net/tcp_states.h>, <linux/inet_diag.h>, <linux/netlink.h>).
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 0x1, 0x300, 2, 3
_HANDSHAKE_STATES = (1 << 3) | (1 << 12)
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, sequence, port id
_SOURCE_PORT_AT = _HEADER.size + 4  # in struct inet_diag_msg: family, state, timer, retrans
_SOURCE_PORT = struct.Struct(">H")  # network byte order
_ERRNO = struct.Struct("=i")


def handshakes_under_way(port: int, family: int = socket.AF_INET) -> bool:
    """Whether the kernel holds a handshake to local ``port`` of a ``family`` listener that has
    begun and not ended (an IPv6 listener's may be IPv4 ones, so both are asked for it).

    Any listener on the port counts (the other workers' too, with SO_REUSEPORT): at worst a
    stopping worker waits for a handshake that was not its own. The kernel picks the sockets
    by state, so the answer costs a few round trips to it however many connections the machine
    holds (reading /proc/net/tcp took ~20 ms with 2,500 of them). When the kernel cannot be
    asked (not Linux, no sock_diag for TCP): True, and the worker waits for the longest a
    handshake may take.
    """
    if not hasattr(socket, "AF_NETLINK"):
        return True
    families = _TCP_FAMILIES if family == socket.AF_INET6 else (family,)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as kernel:
            return any(port in _handshaking_ports(kernel, asked) for asked in families)
    except OSError:
        return True


def _handshaking_ports(kernel: socket.socket, family: int) -> set[int]:
    """The local ports of ``family``'s TCP sockets in a handshake, as the kernel lists them."""
    # struct inet_diag_req_v2: family, protocol, extensions, pad, states, and a zeroed
    # struct inet_diag_sockid (48 bytes), which a dump does not filter on.
    request = struct.pack("=BBBxI48x", family, socket.IPPROTO_TCP, 0, _HANDSHAKE_STATES)
    flags = _NLM_F_REQUEST | _NLM_F_DUMP
    header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, flags, 0, 0)
    kernel.send(header + request)
    ports: set[int] = set()
    while True:
        data, offset = kernel.recv(1 << 16), 0
        while offset < len(data):
            length, kind, *_ = _HEADER.unpack_from(data, offset)
            if kind == _NLMSG_DONE:
                return ports
            if kind == _NLMSG_ERROR:  # struct nlmsgerr: a negative errno first (0: none)
                error = -_ERRNO.unpack_from(data, offset + _HEADER.size)[0]
                if error == 0:
                    return ports
                raise OSError(error, os.strerror(error))  # ENOENT: no sock_diag for it
            ports.add(_SOURCE_PORT.unpack_from(data, offset + _SOURCE_PORT_AT)[0])
            offset += (length + 3) & ~3  # messages are 4-byte aligned


def stop_new_handshakes(listener: socket.socket) -> None:
    """Make the kernel drop the SYNs that reach ``listener``; handshakes already begun end.

    Between a worker's last ``accept`` and its ``close`` the kernel can still complete a
    handshake into the backlog, and ``close`` resets it: seen once in CI as a request reset during
    ``docker stop``, as the request threads can hold the GIL for milliseconds there. With this
    filter no new handshake begins. One begun just before (the client already has its SYN-ACK,
    and believes it is connected) still ends, so the worker accepts those as they end before
    it closes (``handshakes_under_way``). A client whose SYN was dropped sends it again
    about a second later, by when this socket is closed: it is refused, or served by a worker
    still listening. Linux only; elsewhere the short race stays.
    """
    if sys.platform != "linux" or listener.family not in _TCP_FAMILIES:
        return
    program = ctypes.create_string_buffer(_KEEP_HANDSHAKE_ENDINGS)
    length = len(_KEEP_HANDSHAKE_ENDINGS) // 8
    fprog = struct.pack("HL", length, ctypes.addressof(program))  # struct sock_fprog
    try:
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:  # a kernel without socket filters: keep the old, racy behaviour
        return
