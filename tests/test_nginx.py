"""The instance as Elastic Beanstalk runs it: the project's nginx settings in front of gunicorn.

nginx runs with a main configuration shaped like the Docker platform's and the files of
.platform/nginx where EB puts them (tests/nginx_rig.py); behind it, the real service with the
environment .ebextensions gives it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import Server, gunicorn_command, poll, running, stop
from churn.app import request_id_for
from churn.config import Settings
from churn.features import EXAMPLE_CUSTOMER
from tests.bareclient import run_client
from tests.ebconfig import option_settings
from tests.nginx_rig import PLATFORM_NGINX, Proxy, nginx_in_front

pytestmark = pytest.mark.nginx  # Debian's nginx: `make test`, not `make check`

SERVER_CONF = PLATFORM_NGINX / "conf.d" / "elasticbeanstalk" / "churn.conf"
HTTP_CONF = PLATFORM_NGINX / "conf.d" / "churn.conf"
DEFAULTS = Settings.from_env({})
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
TIME_UNITS = {"ms": 0.001, "": 1, "s": 1, "m": 60}
# nginx's own default for how long it keeps an idle connection to the container (upstream
# keepalive_timeout); the platform's upstream block does not set it.
NGINX_UPSTREAM_IDLE_SECONDS = 60


def directive(path: Path, name: str) -> str:
    """The value of the one ``name`` directive in an nginx file."""
    values = re.findall(rf"^\s*{name}\s+([^;]+);", path.read_text(), re.MULTILINE)
    assert len(values) == 1, f"{path.name}: {name} set {len(values)} times"
    return values[0].strip()


def size_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * SIZE_UNITS[unit.lower()]


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|)", value).groups()  # type: ignore[union-attr]
    return int(number) * TIME_UNITS[unit]


def eb_environment() -> dict[str, str]:
    """The service's environment on EB (.ebextensions), on the rig's free port instead of 9696."""
    env = option_settings()["aws:elasticbeanstalk:application:environment"]
    return {name: str(value) for name, value in env.items() if name != "PORT"}


@contextlib.contextmanager
def instance(work: Path) -> Iterator[tuple[Server, Proxy]]:
    with (
        running(gunicorn_command(), work, env=eb_environment()) as service,
        nginx_in_front(service.port, work) as proxy,
    ):
        yield service, proxy


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Iterator[tuple[Server, Proxy]]:
    with instance(tmp_path_factory.mktemp("eb-instance")) as pair:
        yield pair


def request(
    proxy: Proxy, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post_json(proxy: Proxy, body: bytes, headers: dict | None = None):
    return request(
        proxy, "POST", "/predict", body, {"Content-Type": "application/json", **(headers or {})}
    )


def assert_still_answering(proxy: Proxy) -> None:
    status, _, body = post_json(proxy, json.dumps(EXAMPLE_CUSTOMER).encode())
    assert status == 200, body


def nginx_line(proxy: Proxy, uri: str) -> dict:
    """nginx's access line for the one request to ``uri`` (written just after the answer)."""
    lines = poll(
        lambda: [line for line in proxy.access_lines() if line["uri"] == uri],
        bool,
        timeout=10,
        interval=0.05,
    )
    assert len(lines) == 1, lines
    return lines[0]


def service_lines_with(service: Server, request_id: str) -> list[dict]:
    """The service's JSON log lines that name ``request_id`` (its access line among them)."""
    lines = []
    for text in service.output().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(text)
            if isinstance(entry, dict) and entry.get("request_id") == request_id:
                lines.append(entry)
    return lines


def requests_counted(service: Server, route: str) -> float:
    """The service's count of answered requests to ``route`` (/metrics), all statuses."""
    with urllib.request.urlopen(service.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "churn_http_requests_total" and sample.labels.get("route") == route
    )


def batch_body(size: int) -> bytes:
    """A valid 1,000-customer batch, pretty-printed and padded with whitespace to ``size``."""
    customers = [{**EXAMPLE_CUSTOMER, "tenure": n % 72} for n in range(DEFAULTS.max_batch_size)]
    text = json.dumps(customers, indent=8).encode()
    assert len(text) <= size, len(text)
    return text + b" " * (size - len(text))


# --- One definition: the nginx settings against the service's ---


def test_nginx_refuses_exactly_what_the_service_refuses():
    assert size_bytes(directive(SERVER_CONF, "client_max_body_size")) == DEFAULTS.max_body_bytes


def test_nginx_waits_for_an_answer_as_long_as_gunicorn_lets_a_worker_run():
    assert seconds(directive(SERVER_CONF, "proxy_read_timeout")) == DEFAULTS.timeout


def test_gunicorn_keeps_connections_from_nginx_open_longer_than_nginx_does():
    assert int(eb_environment()["GUNICORN_KEEPALIVE"]) > NGINX_UPSTREAM_IDLE_SECONDS


def test_slow_clients_are_given_short_timeouts():
    assert seconds(directive(HTTP_CONF, "client_header_timeout")) <= 10
    assert seconds(directive(SERVER_CONF, "client_body_timeout")) <= 10


# --- Bodies ---


def test_a_pretty_printed_batch_of_1000_customers_passes(rig):
    _, proxy = rig
    status, _, answer = post_json(proxy, batch_body(1_500_000))
    assert status == 200, answer[:300]
    assert len(json.loads(answer)) == DEFAULTS.max_batch_size


def test_a_body_at_the_limit_passes_and_one_byte_more_gets_the_services_json_413(rig):
    service, proxy = rig
    status, _, answer = post_json(proxy, batch_body(DEFAULTS.max_body_bytes))
    assert status == 200, answer[:300]

    too_big = batch_body(DEFAULTS.max_body_bytes + 1)
    status, headers, answer = post_json(proxy, too_big)
    assert status == 413 and headers["Content-Type"] == "application/json"
    from_nginx = json.loads(answer)
    # The service's own answer to the same body, asked directly: the same error, same words.
    direct = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    direct.request("POST", "/predict", too_big, {"Content-Type": "application/json"})
    response = direct.getresponse()
    assert response.status == 413
    assert from_nginx == json.loads(response.read())
    assert_still_answering(proxy)


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` as is and read the answer until the server closes or 3 s of silence."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        received = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


def test_conflicting_content_length_and_transfer_encoding_get_a_json_400(rig):
    _, proxy = rig
    body = json.dumps(EXAMPLE_CUSTOMER).encode()
    smuggling = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (len(body), len(body), body)
    )
    answer = raw_exchange(proxy.port, smuggling)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:300]
    assert json.loads(payload)["error"] == "bad_request"
    assert_still_answering(proxy)


# --- Request ids ---


def test_a_request_id_is_the_same_in_the_answer_and_both_access_logs(rig):
    service, proxy = rig
    body = json.dumps(EXAMPLE_CUSTOMER).encode()
    status, headers, _ = request(
        proxy,
        "POST",
        "/predict?from=abc",
        body,
        {"Content-Type": "application/json", "X-Request-ID": "abc-123"},
    )
    assert status == 200 and headers["X-Request-ID"] == "abc-123"
    assert nginx_line(proxy, "/predict?from=abc")["request_id"] == "abc-123"
    # The service writes its access lines about once a second.
    assert poll(lambda: service_lines_with(service, "abc-123"), bool, timeout=10, interval=0.1)


def test_without_an_id_nginx_makes_one_and_the_service_uses_it(rig):
    service, proxy = rig
    status, headers, _ = request(proxy, "GET", "/model")
    made = headers["X-Request-ID"]
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", made)
    assert nginx_line(proxy, "/model")["request_id"] == made
    assert poll(lambda: service_lines_with(service, made), bool, timeout=10, interval=0.1)


SAMPLE_IDS = [
    "abc-123",
    "A.b_c:d/e+f=g-h",
    "0" * 128,
    "0" * 129,
    "has space",
    "semi;colon",
    'quote"mark',
    "comma,separated",
    "back\\slash",
    "{braces}",
    "$dollar",
    "caf\u00e9",
]


def test_nginx_and_the_service_accept_the_same_request_ids(rig):
    _, proxy = rig
    for number, sample in enumerate(SAMPLE_IDS):
        uri = f"/health?sample={number}"
        _, headers, _ = request(proxy, "GET", uri, headers={"X-Request-ID": sample})
        nginx_keeps = nginx_line(proxy, uri)["request_id"] == sample
        service_keeps = request_id_for({"HTTP_X_REQUEST_ID": sample}) == sample
        assert nginx_keeps == service_keeps, sample
        assert (headers["X-Request-ID"] == sample) == service_keeps, sample


# --- Errors nginx answers itself ---


def test_with_the_service_stopped_nginx_answers_json_502_and_the_client_fails_in_one_line(
    tmp_path, bare_python, copied_client
):
    with instance(tmp_path) as (service, proxy):
        stop(service.process)
        status, headers, body = request(proxy, "GET", "/health")
        assert status == 502 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["error"] == "bad_gateway"

        url = f"{proxy.url}/predict"
        result = run_client(bare_python, copied_client, "--url", url, "--timeout", "4")
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"error: {url} answered HTTP 502: ")
        attempts = poll(
            lambda: [line for line in proxy.access_lines() if line["uri"] == "/predict"],
            lambda lines: len(lines) > 1,
            timeout=10,
            interval=0.05,
        )
        assert len(attempts) > 1 and {line["status"] for line in attempts} == {502}


def test_a_service_that_does_not_answer_in_time_gets_a_json_504(tmp_path):
    # A container that accepts connections and never answers; nginx's wait shortened from the
    # shipped 30 s (which test_nginx_waits_for_an_answer_as_long_as_gunicorn_lets_a_worker_run
    # checks) to 1 s.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        shorter = {"proxy_read_timeout 30s;": "proxy_read_timeout 1s;"}
        with nginx_in_front(silent.getsockname()[1], tmp_path, changes=shorter) as proxy:
            status, headers, body = request(proxy, "GET", "/health")
    assert status == 504 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "gateway_timeout"


# --- Keep-alive to the container ---


def connections_to(port: int) -> set[int]:
    """Local ports of the loopback TCP connections to ``port`` (any state, TIME_WAIT too)."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if int(remote.split(":")[1], 16) == port:
            ports.add(int(local.split(":")[1], 16))
    return ports


def test_nginx_reuses_its_connections_to_the_container(rig):
    service, proxy = rig
    before = connections_to(service.port)
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    body = json.dumps(EXAMPLE_CUSTOMER).encode()
    for _ in range(50):
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    connection.close()
    assert len(connections_to(service.port) - before) <= 2


# --- Slow clients ---

SLOW_HEADERS = 300
SLOW_BODIES = 100


class SlowClients:
    """Connections that send their headers a byte a second, or announce a body and send one byte.

    Each is watched until nginx closes it.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.header_socks: list[socket.socket] = []
        self.body_socks: list[socket.socket] = []
        self.closed: set[socket.socket] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def open(self) -> None:
        for _ in range(SLOW_HEADERS):
            self.header_socks.append(socket.create_connection(("127.0.0.1", self.port)))
        for _ in range(SLOW_BODIES):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 500\r\n\r\n{"
            )
            self.body_socks.append(sock)
        for sock in self.header_socks + self.body_socks:
            sock.setblocking(False)
        self.thread.start()

    def _trickle(self) -> None:
        # Never-ending headers: the request line, then one header whose value never ends.
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: "
        sent = 0
        while not self.stopping.wait(1.0):
            byte = head[sent : sent + 1] or b"a"
            sent += 1
            for sock in self.header_socks:
                if sock not in self.closed:
                    with contextlib.suppress(BlockingIOError, OSError):
                        sock.send(byte)

    def count_open(self) -> int:
        for sock in self.header_socks + self.body_socks:
            if sock in self.closed:
                continue
            try:
                if sock.recv(65536) == b"":
                    self.closed.add(sock)
            except BlockingIOError:
                pass  # still open, nothing to read
            except OSError:
                self.closed.add(sock)  # reset by nginx
        return SLOW_HEADERS + SLOW_BODIES - len(self.closed)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        for sock in self.header_socks + self.body_socks:
            sock.close()


def ordinary_clients(port: int, seconds_: float, clients: int = 2) -> list[tuple[int, float]]:
    """(status, seconds) of every request ``clients`` keep-alive clients send for ``seconds_``."""
    results: list[tuple[int, float]] = []
    body = json.dumps(EXAMPLE_CUSTOMER).encode()

    def one_client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + seconds_
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except OSError:
                status = 0  # no answer within the client's timeout, or a dropped connection
                connection.close()
            results.append((status, time.perf_counter() - started))
        connection.close()

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.slow
def test_slow_clients_cost_nginx_connections_and_never_reach_the_service(tmp_path):
    with instance(tmp_path) as (service, proxy):
        slow = SlowClients(proxy.port)
        try:
            slow.open()
            results = ordinary_clients(proxy.port, seconds_=5)
            held = slow.count_open()
            # nginx then drops them: client_header_timeout and client_body_timeout (10 s).
            still_open = poll(slow.count_open, lambda n: n == 0, timeout=40, interval=0.5)
        finally:
            slow.close()

        statuses = {status for status, _ in results}
        latencies = sorted(elapsed for _, elapsed in results)
        p99 = latencies[int(len(latencies) * 0.99)]
        assert statuses == {200} and len(results) > 100, statuses
        assert p99 < 0.1, f"p99 {p99 * 1000:.1f} ms over {len(results)} requests"
        # Every slow client was still being held while the ordinary ones were served...
        assert held == SLOW_HEADERS + SLOW_BODIES
        # ...and none is left once nginx's timeouts have passed.
        assert still_open == 0
        # The service counted the ordinary requests and nothing else (its counts reach /metrics
        # within about a second).
        counted = poll(
            lambda: requests_counted(service, "/predict"),
            lambda count: count >= len(results),
            timeout=10,
            interval=0.2,
        )
        assert counted == len(results)
