"""Per-worker tallies: exact counts in process, and under gunicorn with two workers."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import requests
from prometheus_client import CollectorRegistry, Counter, Histogram

from bench.servers import gunicorn_command, poll, running, wait_for_workers
from churn.tally import Tally, flush_all
from tests.liveserver import PREDICTIONS, metric, worker_pids


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
    children = (tallied_counter.labels("a"), tallied_counter.labels("b"), *tallied._buckets)
    calls = [([3, 0, 3, 0, 2, 0], [0.05, 0.05, 0.05, 0.7, 0.9]), ([1, 5, 0, 1, 0, 1], [0.3, 2.0])]
    for counts, observed in calls:
        tally.add_array(children, np.array(counts), {tallied._sum: sum(observed)})
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
    """Flushing once an hour: the counts reach /metrics only through the exit flush."""
    env = {"WEB_CONCURRENCY": "2", "METRICS_FLUSH_SECONDS": "3600"}
    with running(gunicorn_command(), tmp_path, env=env) as server:
        pids = wait_for_workers(server.process.pid, 2)
        sent, ids = 0, set()
        while sent < 300 and len(worker_pids(server, ids)) < 2:
            response = requests.post(server.url + "/predict", json=customer, timeout=10)
            ids.add(response.headers["X-Request-ID"])
            sent += 1
        assert worker_pids(server, ids) == pids
        for pid in pids:  # gunicorn replaces each worker; the old one flushes as it exits
            os.kill(pid, signal.SIGTERM)
        poll(lambda: wait_for_workers(server.process.pid, 2), lambda new: not new & pids, 20, 0.2)
        text = requests.get(server.url + "/metrics", timeout=10).text
        assert metric(text, PREDICTIONS) == sent
