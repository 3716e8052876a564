"""The worker's way of stopping: connections queued before the stop are served, later ones are
refused after the kernel's SYN retry, and none is accepted and then reset."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import selectors
import signal
import socket
import struct
import threading
import time

import pytest
from gunicorn.config import Config

from churn.gunicorn_hooks import (
    _SO_ATTACH_FILTER,
    PromptlyClosingThreadWorker,
    stop_new_handshakes,
)


@pytest.fixture
def listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


def test_a_connection_queued_before_the_stop_is_still_accepted_with_its_data(listener):
    queued = socket.create_connection(listener.getsockname(), timeout=5)
    queued.sendall(b"GET /")
    stop_new_handshakes(listener)
    accepted, _ = listener.accept()
    with queued, accepted:
        assert accepted.recv(16) == b"GET /"


def test_after_the_stop_no_handshake_completes_so_nothing_can_be_reset_at_close(listener):
    stop_new_handshakes(listener)
    with pytest.raises(TimeoutError):  # the SYN is dropped: no connection enters the backlog
        socket.create_connection(listener.getsockname(), timeout=0.5)
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()


_SO_DETACH_FILTER = 27  # <asm-generic/socket.h>
_DROP_EVERY_PACKET = struct.pack("HBBI", 0x06, 0, 0, 0)  # classic BPF: return 0, keep nothing


def test_a_handshake_begun_before_the_stop_still_ends_in_the_backlog(listener):
    """The client's SYN reached the listener before the stop, its ACK comes after: it must be
    let through, or the client believes it is connected and is reset at the close."""
    program = ctypes.create_string_buffer(_DROP_EVERY_PACKET)
    deaf = struct.pack("HL", 1, ctypes.addressof(program))
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, deaf)  # it misses the SYN-ACK
        client.setblocking(False)
        assert client.connect_ex(listener.getsockname()) == errno.EINPROGRESS  # the SYN is out
        time.sleep(0.2)  # the listener has answered it, into the void
        stop_new_handshakes(listener)
        client.setsockopt(socket.SOL_SOCKET, _SO_DETACH_FILTER, 0)
        listener.settimeout(5)  # the listener sends its SYN-ACK again after ~1 s; the ACK ends it
        accepted, _ = listener.accept()
        accepted.close()


def test_a_client_arriving_during_the_stop_is_refused_once_the_socket_closes(listener):
    address = listener.getsockname()
    stop_new_handshakes(listener)
    threading.Timer(0.2, listener.close).start()
    began = time.monotonic()
    with pytest.raises(ConnectionRefusedError):  # its SYN retry finds no listener
        socket.create_connection(address, timeout=10)
    assert time.monotonic() - began < 5, "the client should not wait for its connect timeout"


class SignalledDuringAccept:
    """A listener on which SIGTERM reaches the worker right after ``accept`` returns: a signal
    handler runs between any two bytecodes of the main thread, so this can happen in a real
    worker (seen once in 8 stops under load: the worker exited with 255)."""

    def __init__(self, sock: socket.socket, worker: PromptlyClosingThreadWorker) -> None:
        self.sock, self.worker = sock, worker

    def accept(self) -> tuple[socket.socket, object]:
        accepted = self.sock.accept()
        self.worker.handle_exit(signal.SIGTERM, None)
        return accepted

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


def test_a_sigterm_landing_inside_an_accept_leaves_that_connection_served(listener):
    served: list[object] = []
    worker = PromptlyClosingThreadWorker(
        0, os.getppid(), [], None, 30, Config(), logging.getLogger("test")
    )
    worker.method_queue.init()  # what the handler wakes the loop with
    worker.enqueue_req = served.append  # handed to the thread pool in a running worker
    worker.sockets = [SignalledDuringAccept(listener, worker)]
    worker.poller = selectors.DefaultSelector()
    worker.set_accept_enabled(True)  # as gunicorn's loop starts
    address = listener.getsockname()
    with socket.create_connection(address, timeout=5):
        worker.accept(worker.sockets[0])
        assert len(served) == 1 and not worker.alive
        worker.set_accept_enabled(False)  # what gunicorn's loop calls as it ends
    assert listener.fileno() == -1  # closed for good
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5)
