"""The benchmark harness: its rows are what they say, and its floors are judged right.

No speed is asserted here; speed is what `make bench` reports.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
import requests

from bench.contenders import Contender, contenders, peer_python
from bench.run import Floor, Result, check_answer, check_worker_count, expected_answer, judge, start
from bench.servers import gunicorn_command, running
from churn.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_smoke_run_measures_every_row_and_judges_each_floor_on_them(tmp_path):
    # --no-build: a peer whose environment is not built yet (building needs PyPI and minutes)
    # is reported as not measured, with the reason, instead of failing the run.
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench.run", "--smoke", "--no-build", "--json", str(out)]
    command += ["--output", str(tmp_path)]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    rows = {row["key"]: row for row in report["rows"]}
    expected = contenders(2, tmp_path, build_peers=False, containers=False)
    assert list(rows) == [contender.key for contender in expected]
    for contender in expected:
        row = rows[contender.key]
        if contender.peer and not row["rps"]:
            assert row["unavailable"]  # with its reason
            continue
        assert len(row["rps"]) == 1 and row["rps"][0] > 0, row  # one round of one slice
        assert contender.peer or row["errors"] == 0, row  # ours and baselines: no errors
    for floor in report["floors"]:
        mine, theirs = rows.get(floor["row"]), rows.get(floor["against"])
        if not (mine and theirs and mine["rps"] and theirs["rps"]):
            assert floor["ratio"] is None and floor["met"] is None, floor
            continue
        assert floor["ratio"] == pytest.approx(mine["rps"][0] / theirs["rps"][0])
        if floor["least"] is not None:
            assert floor["met"] is (floor["ratio"] >= floor["least"])
    judged = {floor["row"] + "/" + floor["against"] for floor in report["floors"]}
    assert {"ours/fastapi", "quiet/course", "monitored/unmonitored"} <= judged
    assert "container/container-no-log" in judged
    assert report["batch"]["server_ms"] > 0


def runs(*rates: float) -> list[dict]:
    return [{"rps": rate} for rate in rates]


def test_a_floor_is_the_median_of_each_rounds_ratio_and_a_missing_row_is_not_judged():
    # Round by round the row is 1, 3 and 1 times its baseline: the floor's ratio is 1, where the
    # ratio of the two medians (300 / 100) would be 3.
    row = Result(Contender("row", "row", [], {}, 1), runs=runs(100, 300, 400))
    base = Result(Contender("base", "base", [], {}, 1), runs=runs(100, 100, 400))
    gone = Result(Contender("gone", "gone", [], {}, 1, unavailable="no engine"))
    floors = (
        Floor("row ≥ 1.3× base", "row", "base", 1.3),
        Floor("row ≥ 0.9× base", "row", "base", 0.9),
        Floor("row against a row not measured", "row", "gone", 0.9),
        Floor("shown only", "base", "row", None),
    )
    judged = judge([row, base, gone], floors)
    assert [(floor["ratio"], floor["met"]) for floor in judged[:3]] == [
        (1.0, False),
        (1.0, True),
        (None, None),
    ]
    assert judged[3]["ratio"] == statistics.median([1.0, 1 / 3, 1.0]) and judged[3]["met"] is None


def test_the_monitoring_rows_serve_without_drift_and_with_a_shadow_model(tmp_path):
    rows = {c.key: c for c in contenders(1, tmp_path, build_peers=False, containers=False)}
    with running(gunicorn_command(), tmp_path, env=rows["unmonitored"].env) as server:
        assert requests.get(server.url + "/drift", timeout=10).status_code == 404
    with running(gunicorn_command(), tmp_path, env=rows["monitored"].env) as server:
        shadow = requests.get(server.url + "/model", timeout=10).json()["shadow"]
        assert shadow["sample"] == 1
    with running(gunicorn_command(), tmp_path, env=rows["ours"].env) as server:
        assert requests.get(server.url + "/drift", timeout=10).status_code == 200


def test_a_peer_that_cannot_start_is_reported_but_ours_failing_stops_the_run(tmp_path):
    exits = [sys.executable, "-c", "raise SystemExit(3)"]
    peer = Result(Contender("peer", "a peer", exits, {}, workers=1, peer=True))
    with contextlib.ExitStack() as stack:
        assert start(peer, tmp_path, stack) is None
        assert peer.unavailable and peer.unavailable.startswith("did not start: server exited")
        with pytest.raises(RuntimeError, match="exited with 3"):
            start(Result(Contender("ours", "ours", exits, {}, workers=1)), tmp_path, stack)


def test_a_server_that_answers_other_json_is_refused_before_load(tmp_path):
    # The raw ceiling answers a constant of the right shape: fine as a ceiling, wrong as a model.
    command = gunicorn_command("bench.ceiling_app:app")
    expected = expected_answer()
    with running(command, tmp_path, env={"WEB_CONCURRENCY": "1"}) as server:
        ceiling = Contender("ceiling", "ceiling", command, {}, 1, checks_probability=False)
        check_answer(server.url, ceiling, expected)
        with pytest.raises(AssertionError, match="as a model: answered"):
            check_answer(server.url, Contender("model", "as a model", command, {}, 1), expected)


def test_a_server_with_other_than_its_declared_workers_is_not_measured(tmp_path):
    # Ratios are only fair at equal workers, so the harness checks each server's real count.
    command = gunicorn_command()
    with running(command, tmp_path, env={"WEB_CONCURRENCY": "1"}) as server:
        pid = server.process.pid
        check_worker_count(pid, Contender("one", "one worker", command, {}, workers=1))
        claims_two = Contender("two", "claims two", command, {}, workers=2)
        with pytest.raises(AssertionError, match="claims two"):
            check_worker_count(pid, claims_two, timeout=1)


def test_a_row_can_start_something_first_and_be_loaded_through_something_in_front(tmp_path):
    # How the rows "capture on" (a database first) and "through nginx" (a proxy in front) plug in.
    fronted: list[int] = []

    @contextlib.contextmanager
    def before(work):
        yield {"WEB_CONCURRENCY": "3"}

    @contextlib.contextmanager
    def front(port, work):
        fronted.append(port)
        yield SimpleNamespace(url="http://proxy.invalid")

    row = Contender("row", "a row", gunicorn_command(), {}, 3, before=before, front=front)
    with contextlib.ExitStack() as stack:
        serving = start(Result(row), tmp_path, stack)
        assert serving is not None and serving.url == "http://proxy.invalid"
        check_worker_count(serving.master_pid, row)  # the three workers ``before`` asked for
        health = requests.get(f"http://127.0.0.1:{fronted[0]}/health", timeout=10)
        assert health.status_code == 200  # the front was given the server's own port


def test_a_peer_environment_not_built_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    python, why = peer_python("fastapi", build=False)
    assert python is None and "`make bench` builds it" in why
    # A build that fails (here: a requirement pip cannot install) gives its reason, not a crash.
    (tmp_path / "broken.txt").write_text(f"{tmp_path / 'no-such-project'}\n")
    python, why = peer_python("broken", build=True, requirements_dir=tmp_path)
    assert python is None and why.startswith("its environment could not be built: ERROR")


def test_microbenchmarks_run(tmp_path):
    junit = tmp_path / "micro.xml"
    command = [sys.executable, "-m", "pytest", "bench/test_micro.py", "--benchmark-disable"]
    command += ["-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every benchmark ran and passed: none skipped, failed or in error.
    suite = ElementTree.parse(junit).getroot().find("testsuite")  # noqa: S314 (written just now)
    assert suite is not None and int(suite.get("tests", "0")) > 0
    assert [suite.get(kind) for kind in ("skipped", "failures", "errors")] == ["0", "0", "0"]
