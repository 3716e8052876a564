"""How the access log's gathered lines reach the stream: whole, and never into a sibling worker's
lines on the pipe they share (churn/logs.py ``write_all``; in the container, `docker logs`)."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from gunicorn.config import Config

from churn import logpipe
from churn.logs import JsonLogger


def read_slowly(read_end: int, received: bytearray) -> None:
    """A reader slower than the writers, as the engine is under load: the pipe stays full."""
    while chunk := os.read(read_end, 16 * 1024):
        received.extend(chunk)
        time.sleep(0.0005)


def python_u_stdout(descriptor: int) -> io.TextIOWrapper:
    """What sys.stdout is under PYTHONUNBUFFERED (the image): text straight onto a raw FileIO."""
    return io.TextIOWrapper(io.FileIO(descriptor, "w", closefd=False), write_through=True)


def test_a_write_cut_short_by_a_signal_is_finished():
    read_end, write_end = os.pipe()
    stream = python_u_stdout(write_end)
    text = "x" * (2 * 1024 * 1024)
    received = bytearray()
    reader = threading.Thread(target=read_slowly, args=(read_end, received))
    reader.start()
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)  # as SIGTERM may land mid-write
    try:
        logpipe.write_all(stream, text)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    stream.close()
    os.close(write_end)
    reader.join(30)
    os.close(read_end)
    assert len(received) == len(text)


def write_lines_and_exit(write_end: int, worker: str, batches: int, lines: int) -> None:
    """In a forked child: write numbered lines in big batches, as a worker's flusher does."""
    code = 1
    try:
        stream = python_u_stdout(write_end)
        for batch in range(batches):
            numbered = (f"{worker}-{batch}-{n}-{'x' * 100}\n" for n in range(lines))
            logpipe.write_all(stream, "".join(numbered))
        code = 0
    finally:
        os._exit(code)


def test_workers_sharing_a_full_pipe_never_write_into_each_others_lines():
    read_end, write_end = os.pipe()
    workers, batches, lines = ("a", "b", "c"), 12, 1500  # ~170 KiB a write, over the pipe's 64
    children = []
    for worker in workers:
        child = os.fork()
        if child == 0:
            write_lines_and_exit(write_end, worker, batches, lines)
        children.append(child)
    os.close(write_end)
    received = bytearray()
    read_slowly(read_end, received)
    os.close(read_end)
    exit_codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    assert exit_codes == [0, 0, 0]
    written = {
        f"{w}-{b}-{n}-{'x' * 100}" for w in workers for b in range(batches) for n in range(lines)
    }
    got = received.decode().splitlines()
    broken = [line for line in got if line not in written]
    assert not broken, f"{len(broken)} lines written into each other, e.g. {broken[0][:150]!r}"
    assert len(got) == len(written) and set(got) == written


def pipe_size(descriptor: int) -> int:
    return fcntl.fcntl(descriptor, fcntl.F_GETPIPE_SZ)


def test_the_access_log_widens_a_stdout_pipe_to_hold_a_whole_flush(monkeypatch):
    read_end, write_end = os.pipe()
    default = pipe_size(write_end)
    monkeypatch.setattr(sys, "stdout", python_u_stdout(write_end))
    access = logging.getLogger("gunicorn.access")  # process-wide: put back as it was
    handlers = access.handlers[:]
    config = Config()
    config.set("accesslog", "-")  # gunicorn's stdout: the container's log pipe
    try:
        JsonLogger(config)
        widened = pipe_size(write_end)
    finally:
        access.handlers[:] = handlers
        os.close(write_end)
        os.close(read_end)
    allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    assert widened == min(1024 * 1024, allowed) > default


def test_files_and_terminals_are_written_as_they_were(tmp_path):
    primary, terminal = os.openpty()
    with (tmp_path / "access.log").open("w") as file, open(terminal, "w") as tty:
        for stream in (file, tty):
            logpipe.widen_pipe(stream)  # no pipe behind them: nothing to widen, no error
            logpipe.write_all(stream, "one line\n")
        assert os.read(primary, 100).replace(b"\r", b"") == b"one line\n"
    os.close(primary)
    assert (tmp_path / "access.log").read_text() == "one line\n"
    logpipe.widen_pipe(io.StringIO())  # no descriptor at all
