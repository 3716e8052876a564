"""The benchmark harness in smoke mode, so it cannot rot: every server must answer correctly.

No speed is asserted here; speed is what `make bench` reports.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys

import pytest

from bench.contenders import Contender, Role, contenders
from bench.load import had_idle_worker
from bench.measure import Result, check_answer, check_worker_count, expected_answer, start
from bench.peers import envs
from bench.servers import gunicorn_command, running
from churn.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_harness_runs_every_server_and_they_all_answer_correctly(tmp_path):
    # --no-build: a peer whose environment is not built yet (CI: building needs PyPI and minutes)
    # must be reported as not measured, with the reason, instead of failing the run.
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--smoke",
        "--no-build",
        "--output",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    servers, goals = markdown_tables(result.stdout)
    rows = {row[0]: row for row in servers[1:]}
    expected = contenders(workers=2, build_peers=False)  # the smoke run's defaults
    assert list(rows) == [contender.name for contender in expected]
    for contender in expected:
        row = rows[contender.name]
        if contender.role is Role.PEER and row[1] == "—":
            assert f"not measured: {contender.name}: " in result.stdout  # with its reason
            continue
        assert contender.role is Role.PEER or row[4] == "0", row  # ours and baselines: no errors
        assert int(row[8]) > 0, row  # the server's CPU time per request, in µs
        if contender.role is not Role.PEER:  # the idle-worker check, per slice
            assert row[7] == ("n/a (1 worker)" if contender.workers == 1 else "0/1"), row
    for ratio in ("ours / ceiling: **", "ours / course: **", "ours / best peer: "):
        assert ratio in result.stdout
    assert "batch, server time" in result.stdout
    verdicts = {row[0]: row[2] for row in goals[1:]}
    assert len(verdicts) == 7 and set(verdicts.values()) <= {"yes", "**no**", "not judged"}
    assert verdicts["no errors"] == "yes"


def test_a_peer_that_cannot_start_is_reported_but_ours_failing_stops_the_run(tmp_path):
    exits = [sys.executable, "-c", "raise SystemExit(3)"]
    peer = Result(Contender("a peer", exits, {}, workers=1, role=Role.PEER))
    with contextlib.ExitStack() as stack:
        assert start(peer, tmp_path, stack) is None
        assert peer.unavailable and peer.unavailable.startswith("did not start: server exited")
        with pytest.raises(RuntimeError, match="exited with 3"):
            start(Result(Contender("ours", exits, {}, workers=1, role=Role.OURS)), tmp_path, stack)


def test_a_server_that_answers_other_json_is_refused_before_load(tmp_path):
    # The raw ceiling answers a constant of the right shape: fine as a ceiling, wrong as a model.
    command = gunicorn_command("bench.ceiling_app:app")
    expected = expected_answer()
    with running(command, tmp_path, env={"WEB_CONCURRENCY": "1"}) as server:
        check_answer(
            server, Contender("ceiling", command, {}, 1, checks_probability=False), expected
        )
        with pytest.raises(AssertionError, match="as a model: answered"):
            check_answer(server, Contender("as a model", command, {}, 1), expected)


def test_a_peer_environment_not_built_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    missing = envs.peer_env("fastapi", build=False)
    assert missing.python is None and "`make bench` builds it" in (missing.unavailable or "")
    # A build that fails (here: a requirement pip cannot install) gives its reason, not a crash.
    monkeypatch.setattr(envs, "HERE", tmp_path)
    (tmp_path / "broken.txt").write_text(f"{tmp_path / 'no-such-project'}\n")
    broken = envs.peer_env("broken", build=True)
    assert broken.python is None
    assert (broken.unavailable or "").startswith("its environment could not be built: ERROR")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The tables in ``text``: rows of cells, separator rows left out."""
    tables: list[list[list[str]]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|") and "---" not in line:
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append([cell.strip() for cell in line.strip("|").split("|")])
        previous = line
    return tables


def test_microbenchmarks_run(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/test_micro.py",
            "--benchmark-disable",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every collected benchmark ran and passed: none skipped, deselected or failed.
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"(\d+) passed in .*", summary), summary
    assert int(summary.split()[0]) == count_tests("bench/test_micro.py")


def count_tests(path: str) -> int:
    """How many tests pytest collects from ``path`` (parametrized cases count once each)."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", path, "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return sum(1 for line in collected.stdout.splitlines() if "::" in line)


def test_a_slice_where_one_worker_did_nothing_is_flagged():
    before = {101: 5.0, 102: 7.0}
    assert had_idle_worker(before, {101: 7.0, 102: 7.01})
    assert not had_idle_worker(before, {101: 6.0, 102: 7.8})
    assert not had_idle_worker({101: 5.0}, {101: 7.0})  # one worker cannot be unbalanced


def test_a_server_with_other_than_its_declared_workers_is_not_measured(tmp_path):
    # Ratios are only fair at equal workers, so the harness checks each server's real count.
    command = gunicorn_command()
    with running(command, tmp_path, env={"WEB_CONCURRENCY": "1"}) as server:
        check_worker_count(server, Contender("one worker", command, {}, workers=1))
        claims_two = Contender("claims two", command, {}, workers=2)
        with pytest.raises(AssertionError, match="claims two"):
            check_worker_count(server, claims_two, timeout=1)


def test_the_profiler_splits_a_loaded_workers_time():
    result = subprocess.run(
        [sys.executable, "-m", "bench.profile", "--seconds", "2", "--top", "5"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    split = re.search(r"CPU per request: (\d+) µs, .*: (\d+) µs \((\d+)%\)", result.stdout)
    assert split, result.stdout
    cpu_us, app_us, _ = map(int, split.groups())
    assert 0 < app_us < cpu_us
    parts, functions = markdown_tables(result.stdout)
    shares = [float(row[1].rstrip("%")) for row in parts[1:]]
    assert abs(sum(shares) - 100) < 0.5 and len(functions) == 6  # header + --top 5
