"""Start real servers on free loopback ports: used by the end-to-end tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from churn.config import PROJECT_ROOT

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 20.0) -> float:
    """Poll ``url`` until it answers; return the seconds it took. Fails if the process dies."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return time.monotonic() - started
        time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def workers_of(master_pid: int) -> set[int]:
    """The pids of a gunicorn master's workers (its child processes)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return {int(pid) for pid in children}


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float) -> T:
    """Call ``read`` until ``done`` accepts its value or ``timeout`` passes; the last value.

    For what a server does after answering, or while it boots: no fixed sleep, which a loaded
    machine would outlast.
    """
    deadline = time.monotonic() + timeout
    while not done(value := read()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def wait_for_workers(master_pid: int, count: int, timeout: float = 20) -> set[int]:
    pids = poll(lambda: workers_of(master_pid), lambda pids: len(pids) == count, timeout, 0.1)
    if len(pids) != count:
        raise TimeoutError(f"expected {count} workers, have {pids}")
    return pids


def gunicorn_command(app: str = "predict:app", config: str = "gunicorn.conf.py") -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", config, app]


@contextlib.contextmanager
def running(
    command: Sequence[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path = PROJECT_ROOT,
    health_path: str = "/health",
    port: int | None = None,
    port_template: str | None = None,
    timeout: float = 20.0,
) -> Iterator[Server]:
    """Run ``command`` with PORT set to a free port until ``health_path`` answers; stop it after.

    ``port_template`` is replaced by the port in the command's arguments and ``env``'s values.
    """
    port = port or free_port()
    env = dict(env or {})
    if port_template:
        command = [part.replace(port_template, str(port)) for part in command]
        env = {name: value.replace(port_template, str(port)) for name, value in env.items()}
    log = log_dir / f"server-{port}.log"
    full_env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", **env}
    with open(log, "wb") as handle:
        process = subprocess.Popen(list(command), cwd=cwd, env=full_env, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    server = Server(process, port, log)
    try:
        wait_until_up(server.url + health_path, process, timeout)
        yield server
    except BaseException:
        sys.stderr.write(server.output()[-4000:])
        raise
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gunicorn_settings(env: dict[str, str] | None = None) -> dict:
    """gunicorn.conf.py's settings as seen with ``env`` (default: this process's environment).

    The file may set variables in os.environ; they are put back after, so none leaks.
    """
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        return runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
