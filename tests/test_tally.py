"""Per-worker tallies: exact counts in process, and under gunicorn with two workers."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import requests
from prometheus_client import CollectorRegistry, Counter, Histogram

from bench.servers import gunicorn_command, poll, running, wait_for_workers
from churn.features import FEATURE_FIELDS
from churn.tally import (
    DEFAULT_INTERVAL,
    GATHER_BACKLOG_ROWS,
    GATHER_WAKE_ROWS,
    Tally,
    flush_all,
    histogram_parts,
    set_interval,
)
from tests.liveserver import PREDICTIONS, metric, worker_pids

DRIFT_ROWS = "churn_drift_bin_rows_total"


def fresh_metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("things", "things seen", ["kind"], registry=registry)
    histogram = Histogram("sizes", "sizes seen", buckets=(0.1, 0.5, 1.0), registry=registry)
    return registry, counter, histogram


def test_counts_reach_the_counter_only_when_flushed():
    registry, counter, _ = fresh_metrics()
    tally = Tally()
    tally.add(counter.labels("a"))
    tally.add(counter.labels("a"), 4)
    tally.add_each([counter.labels("b"), counter.labels("a"), counter.labels("b")])
    assert registry.get_sample_value("things_total", {"kind": "a"}) in (None, 0.0)
    tally.flush()
    assert registry.get_sample_value("things_total", {"kind": "a"}) == 6
    assert registry.get_sample_value("things_total", {"kind": "b"}) == 2
    tally.flush()  # nothing new: nothing added twice
    assert registry.get_sample_value("things_total", {"kind": "a"}) == 6


def test_tallied_observations_expose_what_observe_would():
    tallied_registry, _, tallied = fresh_metrics()
    direct_registry, _, direct = fresh_metrics()
    tally = Tally()
    for value in (0.05, 0.1, 0.3, 0.5, 0.7, 2.0, 9.0):
        tally.observe(tallied, value)
        direct.observe(value)
    flush_all()
    assert samples(tallied_registry) == samples(direct_registry)


def test_arrays_of_counts_add_up_to_their_children_and_a_histograms_buckets():
    """``add_array``: counts of several children (a histogram's buckets among them) summed
    over calls, as the same increments and observations made one by one would."""
    tallied_registry, tallied_counter, tallied = fresh_metrics()
    direct_registry, direct_counter, direct = fresh_metrics()
    tally = Tally()
    parts = histogram_parts(tallied)
    children = (tallied_counter.labels("a"), tallied_counter.labels("b"), *parts.buckets)
    calls = [([3, 0, 3, 0, 2, 0], [0.05, 0.05, 0.05, 0.7, 0.9]), ([1, 5, 0, 1, 0, 1], [0.3, 2.0])]
    for counts, observed in calls:
        tally.add_array(children, np.array(counts), {parts.total: sum(observed)})
        direct_counter.labels("a").inc(counts[0])
        direct_counter.labels("b").inc(counts[1])
        for value in observed:
            direct.observe(value)
    tally.flush()
    assert samples(tallied_registry) == samples(direct_registry)
    assert tallied_registry.get_sample_value("things_total", {"kind": "b"}) == 5


def samples(registry: CollectorRegistry) -> list[tuple]:
    """Every sample but the creation timestamps, which differ between two registries."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


def test_no_count_is_lost_between_threads():
    registry, counter, _ = fresh_metrics()
    tally, child = Tally(), counter.labels("x")

    def hammer() -> None:
        for _ in range(20_000):
            tally.add(child)
            tally.add_each((child, child))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.flush()
    assert registry.get_sample_value("things_total", {"kind": "x"}) == 4 * 20_000 * 3


def test_gathered_items_reach_their_consumer_once_at_the_flush_with_their_counts():
    """``gather``: each consumer gets every item kept for it, in order, at the next flush, and
    what it tallies reaches the metrics in that same flush."""
    registry, counter, _ = fresh_metrics()
    tally = Tally()
    received: dict[str, list] = {"a": [], "b": []}

    def consumer(name: str):
        def consume(items: list) -> None:
            received[name].append(items)
            tally.add(counter.labels(name), sum(items))

        return consume

    first, second = consumer("a"), consumer("b")
    for item in (3, 1, 4):
        tally.gather(first, item, rows=item)
    tally.gather(second, 10, rows=10)
    assert received == {"a": [], "b": []}  # kept, not yet handed on
    tally.flush()
    assert received == {"a": [[3, 1, 4]], "b": [[10]]}
    assert registry.get_sample_value("things_total", {"kind": "a"}) == 8
    assert registry.get_sample_value("things_total", {"kind": "b"}) == 10
    tally.flush()  # nothing gathered since: no call, nothing added twice
    assert received == {"a": [[3, 1, 4]], "b": [[10]]}
    assert registry.get_sample_value("things_total", {"kind": "a"}) == 8


def test_a_failing_consumer_loses_no_other_count(caplog):
    registry, counter, _ = fresh_metrics()
    tally = Tally()

    def broken(items: list) -> None:
        raise RuntimeError("injected")

    tally.gather(broken, "x", rows=1)
    tally.gather(lambda items: tally.add(counter.labels("gathered"), len(items)), "y", rows=1)
    tally.add(counter.labels("plain"), 2)
    tally.flush()
    assert registry.get_sample_value("things_total", {"kind": "gathered"}) == 1
    assert registry.get_sample_value("things_total", {"kind": "plain"}) == 2
    assert "a gathered count failed" in caplog.text


def test_many_gathered_rows_flush_early_and_a_backlog_is_flushed_by_the_gatherer():
    """A busy worker's gathered batches are bounded: past GATHER_WAKE_ROWS the flusher runs
    before its interval; past GATHER_BACKLOG_ROWS the gathering thread flushes them itself."""
    calls: list[list] = []
    set_interval(3600)
    try:
        tally = Tally()
        tally.gather(calls.append, "small", rows=10)
        tally.gather(calls.append, "big", rows=GATHER_WAKE_ROWS)
        poll(lambda: calls, bool, timeout=10, interval=0.02)
        assert calls == [["small", "big"]]
        stalled = Tally()
        stalled._flusher = threading.current_thread()  # a flusher that never runs
        stalled.gather(calls.append, "backlog", rows=GATHER_BACKLOG_ROWS)
        assert calls[-1] == ["backlog"]  # flushed before gather returned
    finally:
        set_interval(DEFAULT_INTERVAL)


def test_the_flush_thread_delivers_without_being_asked():
    registry, counter, _ = fresh_metrics()
    tally = Tally()
    tally.add(counter.labels("t"), 3)
    seen = poll(
        lambda: registry.get_sample_value("things_total", {"kind": "t"}),
        lambda value: value == 3,
        timeout=5,
        interval=0.05,
    )
    assert seen == 3


def test_a_worker_flushes_its_counts_when_it_exits(tmp_path, customer):
    """Flushing once an hour: the counts reach /metrics only through the exit flush, the
    batches' gathered drift counts (churn/watch.py) too."""
    env = {"WEB_CONCURRENCY": "2", "METRICS_FLUSH_SECONDS": "3600"}
    with running(gunicorn_command(), tmp_path, env=env) as server:
        pids = wait_for_workers(server.process.pid, 2)
        sent, ids = 0, set()
        while sent < 3000 and len(worker_pids(server, ids)) < 2:
            batch = len(ids) % 2 == 0  # every other request a batch on the fast path
            payload = [customer] * 20 if batch else customer
            response = requests.post(server.url + "/predict", json=payload, timeout=10)
            ids.add(response.headers["X-Request-ID"])
            sent += 20 if batch else 1
        assert worker_pids(server, ids) == pids
        for pid in pids:  # gunicorn replaces each worker; the old one flushes as it exits
            os.kill(pid, signal.SIGTERM)
        poll(lambda: wait_for_workers(server.process.pid, 2), lambda new: not new & pids, 20, 0.2)
        text = requests.get(server.url + "/metrics", timeout=10).text
        assert metric(text, PREDICTIONS) == sent
        assert metric(text, DRIFT_ROWS) == sent * len(FEATURE_FIELDS)
