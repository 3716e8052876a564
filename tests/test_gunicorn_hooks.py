"""The worker's way of stopping: connections queued before the stop are served, later ones are
refused after the kernel's SYN retry, and none is accepted and then reset."""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from gunicorn.config import Config

from churn import gunicorn_hooks
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


@contextlib.contextmanager
def missing_the_syn_ack(listener: socket.socket) -> Iterator[socket.socket]:
    """A client whose SYN reached ``listener`` and which misses the SYN-ACK: the handshake
    stays under way until the filter is detached and the listener sends its SYN-ACK again."""
    program = ctypes.create_string_buffer(_DROP_EVERY_PACKET)
    deaf = struct.pack("HL", 1, ctypes.addressof(program))
    with socket.socket(listener.family) as client:
        client.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, deaf)
        client.setblocking(False)
        assert client.connect_ex(listener.getsockname()[:2]) == errno.EINPROGRESS  # SYN out
        time.sleep(0.2)  # the listener has answered it, into the void
        yield client


def test_a_handshake_begun_before_the_stop_still_ends_in_the_backlog(listener):
    """The client's SYN reached the listener before the stop, its ACK comes after: it must be
    let through, or the client believes it is connected and is reset at the close."""
    with missing_the_syn_ack(listener) as client:
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


@dataclass
class Worker:
    """A stopping worker's parts, outside gunicorn's loop: what it handed on to be served."""

    worker: PromptlyClosingThreadWorker
    served: list[object]

    def listen_on(self, listener: object) -> None:
        self.worker.sockets = [listener]
        self.worker.set_accept_enabled(True)  # as gunicorn's loop starts

    def stop(self) -> None:
        self.worker.handle_exit(signal.SIGTERM, None)
        self.worker.set_accept_enabled(False)  # what gunicorn's loop calls as it ends


@pytest.fixture
def worker() -> Worker:
    served: list[object] = []
    worker = PromptlyClosingThreadWorker(
        0, os.getppid(), [], None, 30, Config(), logging.getLogger("test")
    )
    worker.method_queue.init()  # what the SIGTERM handler wakes the loop with
    worker.enqueue_req = served.append  # handed to the thread pool in a running worker
    worker.poller = selectors.DefaultSelector()
    return Worker(worker, served)


def test_a_sigterm_landing_inside_an_accept_leaves_that_connection_served(listener, worker):
    worker.listen_on(SignalledDuringAccept(listener, worker.worker))
    address = listener.getsockname()
    with socket.create_connection(address, timeout=5):
        worker.worker.accept(worker.worker.sockets[0])
        assert len(worker.served) == 1 and not worker.worker.alive
        worker.worker.set_accept_enabled(False)  # what gunicorn's loop calls as it ends
    assert listener.fileno() == -1  # closed for good
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5)


def test_with_no_handshake_under_way_the_stop_closes_without_waiting(listener, worker, monkeypatch):
    """Until the close a newcomer's SYN is dropped and it waits a second for its retry, so the
    worker must not wait out its longest settle when nothing is under way."""
    monkeypatch.setattr(gunicorn_hooks, "HANDSHAKE_SETTLE_SECONDS", 600)
    worker.listen_on(listener)
    stopping = threading.Thread(target=worker.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=10)
    assert not stopping.is_alive() and listener.fileno() == -1


def test_the_stop_waits_for_a_handshake_under_way_and_serves_it(listener, worker, monkeypatch):
    monkeypatch.setattr(gunicorn_hooks, "HANDSHAKE_SETTLE_SECONDS", 10)
    port = listener.getsockname()[1]
    worker.listen_on(listener)
    with missing_the_syn_ack(listener) as client:
        assert gunicorn_hooks.handshakes_under_way(port)
        client.setsockopt(socket.SOL_SOCKET, _SO_DETACH_FILTER, 0)  # the retried SYN-ACK lands
        worker.stop()  # ~1 s: the listener sends its SYN-ACK again, and the ACK ends the handshake
        assert len(worker.served) == 1
    assert not gunicorn_hooks.handshakes_under_way(port)


def listening(family: int, host: str) -> socket.socket:
    listener = socket.socket(family)
    try:
        listener.bind((host, 0))
    except OSError as error:  # a machine without IPv6 has no handshake of it to find
        listener.close()
        pytest.skip(f"cannot listen on {host}: {error}")
    listener.listen(4)
    return listener


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_the_kernel_names_the_port_of_a_handshake_under_way(family, host):
    with listening(family, host) as listener, listening(family, host) as quiet:
        port, quiet_port = listener.getsockname()[1], quiet.getsockname()[1]
        assert not gunicorn_hooks.handshakes_under_way(port, family)
        with missing_the_syn_ack(listener):
            assert gunicorn_hooks.handshakes_under_way(port, family)
            assert not gunicorn_hooks.handshakes_under_way(quiet_port, family)


def test_a_unix_socket_listener_stops_too(worker, tmp_path):
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "churn.sock"))
        listener.listen(4)
        worker.listen_on(listener)
        worker.stop()
        assert listener.fileno() == -1


def test_a_worker_at_its_connection_limit_still_serves_its_backlog_at_the_stop(listener, worker):
    """gunicorn stops polling the listener at ``worker_connections``; what the kernel queued
    meanwhile must be served at the stop, not reset by the close."""
    worker.worker.sockets = [listener]  # never polled: as at the limit
    with socket.create_connection(listener.getsockname(), timeout=5):
        worker.stop()
        assert len(worker.served) == 1
