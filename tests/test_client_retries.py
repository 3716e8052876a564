"""predict_test.py's retries, as users copy it, against a stand-in server that answers what a
load balancer would: gateway errors are retried within a time budget, 4xx never."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

import predict_test
from bench.servers import free_port
from tests.bareclient import run_client


class StandIn(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next status of the server's script (then 200 with a result)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        statuses = self.server.script  # type: ignore[attr-defined]
        self.server.seen += 1  # type: ignore[attr-defined]
        status = statuses.pop(0) if statuses else 200
        body = json.dumps(
            {"churn_probability": 0.25, "churn": False}
            if status == 200
            else {"error": "x", "message": f"scripted {status}"}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def stand_in() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.script, server.seen = [], 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stand_in_url(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/predict"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_is_retried(bare_python, copied_client, stand_in, status):
    stand_in.script = [status, status]
    result = run_client(bare_python, copied_client, "--url", stand_in_url(stand_in))
    assert result.returncode == 0, result.stderr
    assert stand_in.seen == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422, 429])
def test_a_4xx_is_never_retried(bare_python, copied_client, stand_in, status):
    stand_in.script = [status]
    result = run_client(bare_python, copied_client, "--url", stand_in_url(stand_in))
    assert result.returncode == 1 and f"HTTP {status}" in result.stderr
    assert stand_in.seen == 1


def test_retries_0_turns_retrying_off(bare_python, copied_client, stand_in):
    stand_in.script = [503]
    result = run_client(
        bare_python, copied_client, "--retries", "0", "--url", stand_in_url(stand_in)
    )
    assert result.returncode == 1 and "HTTP 503" in result.stderr
    assert stand_in.seen == 1


def test_retrying_stops_within_the_time_budget(bare_python, copied_client, stand_in):
    stand_in.script = [503] * 100
    started = time.monotonic()
    result = run_client(
        bare_python, copied_client, "--timeout", "2", "--url", stand_in_url(stand_in)
    )
    assert result.returncode == 1 and "HTTP 503" in result.stderr
    assert 1 < stand_in.seen < 100
    assert time.monotonic() - started < 2 + 5  # the budget, plus interpreter start-up


def test_backoff_grows_with_jitter_and_stays_bounded():
    waits = [
        [predict_test.backoff(retry) for retry in range(predict_test.DEFAULT_RETRIES)]
        for _ in range(200)
    ]
    firsts = {round(w[0], 6) for w in waits}
    assert len(firsts) > 100  # jitter: clients that failed together do not retry together

    def mean(retry: int) -> float:
        return sum(w[retry] for w in waits) / len(waits)

    assert mean(2) > 1.5 * mean(1) > 2.25 * mean(0) > 0  # exponential at first...
    assert max(max(w) for w in waits) <= predict_test.BACKOFF_CAP  # ...then capped
    # The default retries' waits add up to under the default time budget.
    assert max(sum(w) for w in waits) < predict_test.DEFAULT_TIMEOUT


def test_nothing_listening_fails_in_one_line_with_retries_off(bare_python, copied_client):
    url = f"http://127.0.0.1:{free_port()}/predict"
    result = run_client(bare_python, copied_client, "--retries", "0", "--url", url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot reach" in result.stderr
