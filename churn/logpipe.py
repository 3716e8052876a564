"""How the access log's gathered text reaches its stream: whole (a signal may cut a write short),
never into another worker's lines on the pipe they share, and through a pipe wide enough for a
flush (churn/logs.py gathers the lines; in a container the pipe is the engine's log).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# What the stdout pipe (a container's log) is widened to, at most the system's pipe-max-size.
ACCESS_PIPE_BYTES = 1024 * 1024


def write_all(stream: Any, text: str) -> None:
    """Write ``text`` whole, to a pipe too: an unbuffered stdout (PYTHONUNBUFFERED, as in the
    image) drops the rest of a write that a signal cuts short, e.g. SIGTERM at `docker stop`."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a StringIO)
        stream.write(text)
        stream.flush()
        return
    stream.flush()
    rest = memoryview(text.encode(getattr(stream, "encoding", None) or "utf-8"))
    with writing_alone(descriptor):
        while rest:
            rest = rest[os.write(descriptor, rest) :]


@contextlib.contextmanager
def writing_alone(descriptor: int) -> Iterator[None]:
    """Hold the other processes writing to ``descriptor`` (the worker's siblings) back.

    The workers share the container's stdout pipe, and a write of more than PIPE_BUF (4 KiB) to
    a pipe is not atomic: while the pipe is full, another worker's write lands in the middle of
    it, and two lines come out as one broken line (issue 11, docs/performance.md). A POSIX record
    lock belongs to the process, so fork-shared descriptors exclude each other, and the kernel
    drops it when the holder dies. Where a descriptor takes no lock, it is written without one.
    """
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        fcntl.lockf(descriptor, fcntl.LOCK_UN)


def widen_pipe(stream: Any, size: int = ACCESS_PIPE_BYTES) -> None:
    """Let a pipe behind ``stream`` (a container's stdout) hold ``size`` bytes, or the most the
    system allows: a flush of the gathered lines then fits whole while the engine reads, instead
    of waiting on the 64 KiB default. Files, terminals and non-Linux systems are left as they are.
    """
    try:
        descriptor = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(descriptor).st_mode):
            return
        allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        if fcntl.fcntl(descriptor, fcntl.F_GETPIPE_SZ) < min(size, allowed):
            fcntl.fcntl(descriptor, fcntl.F_SETPIPE_SZ, min(size, allowed))
    except (AttributeError, OSError, ValueError):  # not a file, no /proc, over the user's quota
        return
