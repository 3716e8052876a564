"""`docker stop` under load, as EB and a deploy do it, and the logs on the engine's pipe.

`docker stop` sends SIGTERM and, 10 s later, SIGKILL. In-flight 1,000-customer batches must
finish with 200, the container must exit 0 well within those 10 s, and with the access log on
every answered request must have its line in `docker logs`. A connection that arrives during the
stop, with no load balancer in front, is refused or reset without an answer (never a wrong or
partial one): the test prints how many of each, for the README.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.load import require_wrk
from bench.servers import gunicorn_settings
from churn.features import EXAMPLE_CUSTOMER
from tests.containers import DOCKER_STOP_TIMEOUT, Container
from tests.liveserver import RecordingWrk, access_request_ids, await_a_request_begun_after

pytestmark = [pytest.mark.slow, pytest.mark.docker]

BATCH = json.dumps([EXAMPLE_CUSTOMER] * 1000).encode()


@dataclass
class Exchange:
    started: float
    ended: float
    outcome: str  # "refused", "reset", or the HTTP status ("200")
    request_id: str
    body: bytes = b""


def exchange(port: int, method: str, path: str, body: bytes, request_id: str) -> Exchange:
    """One request on its own connection, read to the end, classified at the socket level."""
    started = time.monotonic()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"X-Request-ID: {request_id}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    except ConnectionRefusedError:
        return Exchange(started, time.monotonic(), "refused", request_id)
    received = b""
    with sock:
        try:
            sock.sendall(head + body)
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    if not received:  # accepted, then closed or reset without a byte of an answer
        return Exchange(started, time.monotonic(), "reset", request_id)
    status = received.split(b" ", 2)[1].decode()
    return Exchange(started, time.monotonic(), status, request_id, received.split(b"\r\n\r\n")[1])


def load(port: int, stop: threading.Event, log: list[Exchange], name: str, batch: bool) -> None:
    number = 0
    while not stop.is_set():
        number += 1
        if batch:
            log.append(exchange(port, "POST", "/predict", BATCH, f"{name}-{number}"))
        else:
            log.append(exchange(port, "GET", "/health", b"", f"{name}-{number}"))
        time.sleep(0.002 if not batch or log[-1].outcome == "refused" else 0)


def engine_falls_behind(container: Container, seconds: float) -> None:
    """The engine stops reading the container's output for a while, as on a loaded machine: the
    log pipe fills up and the workers' writes wait in it, which is when the lines of two workers
    could be written into each other."""
    status = Path(f"/proc/{container.state('Pid')}/status").read_text()
    shim = int(status.split("PPid:")[1].split()[0])  # containerd-shim reads the container's stdout
    os.kill(shim, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(shim, signal.SIGCONT)


def test_docker_stop_finishes_in_flight_batches_and_keeps_every_log_line(
    docker_engine, start_container, tmp_path
):
    container = start_container(env={"WEB_CONCURRENCY": "2", "GUNICORN_ACCESSLOG": "-"})
    # Thousands of requests a second besides, each with its own id, as the benchmark's wrk.
    customer = tmp_path / "customer.json"
    customer.write_text(json.dumps(EXAMPLE_CUSTOMER))
    wrk = RecordingWrk(require_wrk(), f"{container.url}/predict", customer, 6, connections=16)
    stop_load = threading.Event()
    log: list[Exchange] = []
    clients = [
        threading.Thread(target=load, args=(container.port, stop_load, log, f"b{i}", True))
        for i in range(4)
    ] + [
        threading.Thread(target=load, args=(container.port, stop_load, log, f"p{i}", False))
        for i in range(2)
    ]
    for client in clients:
        client.start()
    time.sleep(0.5)
    for _ in range(2):
        engine_falls_behind(container, seconds=1)
        time.sleep(0.5)
    stop_began = time.monotonic()
    docker_engine.docker("stop", container.id, timeout=60)
    stopped = time.monotonic()
    await_a_request_begun_after(stopped, lambda: [entry.started for entry in log])
    stop_load.set()
    for client in clients:
        client.join(timeout=60)

    assert container.state("ExitCode") == "0"
    assert stopped - stop_began < DOCKER_STOP_TIMEOUT
    outcomes = {entry.outcome for entry in log}
    assert outcomes <= {"200", "refused", "reset"}, outcomes  # never a wrong or partial answer
    assert all(len(json.loads(e.body)) == 1000 for e in log if e.request_id[0] == "b" and e.body)
    in_flight = [e for e in log if e.started < stop_began < e.ended and e.request_id[0] == "b"]
    assert in_flight and all(e.outcome == "200" for e in in_flight)
    after_exit = [e for e in log if e.started > stopped]
    assert after_exit and {e.outcome for e in after_exit} == {"refused"}
    during = [e.outcome for e in log if stop_began < e.started < stopped]
    print(  # what a client without a load balancer sees (README, Docker)
        f"stop took {stopped - stop_began:.2f} s; connections begun during it: "
        + ", ".join(f"{o} {during.count(o)}" for o in sorted(set(during)))
    )

    answered_by_wrk = set(wrk.answered())
    # ~400 bytes a line: a few hundred lines fill the 64 KiB pipe while the engine is stopped.
    assert len(answered_by_wrk) > 500, "too little load to fill the log pipe"
    logged, broken = access_request_ids(container.logs())
    assert broken == [], f"{len(broken)} access lines written into each other: {broken[0][:200]}"
    answered = {e.request_id for e in log if e.outcome == "200"} | answered_by_wrk
    missing = answered - set(logged)
    assert missing == set(), f"{len(missing)} of {len(answered)} answered requests not logged"


def test_the_image_logs_json_lines_and_no_access_line_by_default(docker_engine, start_container):
    container = start_container()
    request_id = f"default-{os.getpid()}"
    assert exchange(container.port, "GET", "/health", b"", request_id).outcome == "200"
    docker_engine.docker("stop", container.id, timeout=60)  # every line it would write is written
    entries = [json.loads(line) for line in container.logs().splitlines()]  # each one JSON
    assert any(e["message"].startswith("churn-serving listening on") for e in entries)
    assert any(e["message"].startswith("Shutting down") for e in entries)
    assert request_id not in container.logs()  # EB's nginx logs the requests


def test_the_graceful_timeout_fits_inside_docker_stop():
    graceful = gunicorn_settings({})["graceful_timeout"]
    assert 0 < graceful <= DOCKER_STOP_TIMEOUT - 2, "leave the master time to exit before SIGKILL"
