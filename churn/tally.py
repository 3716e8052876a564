"""Per-worker tallies of metric increments, flushed to Prometheus about once a second.

A ``prometheus_client`` counter in multiprocess mode writes to a memory-mapped file under a lock
on every ``inc()``: 19 of them per request cost 8-16% of a request (issue 16). A ``Tally`` adds
to a plain dict instead and a background thread in each worker hands the sums to the shared
counters every second (``set_interval``), so /metrics lags by at most that long. Counts from all
workers still add up, because each worker flushes into its own multiprocess file; a worker's
last counts are flushed when it exits (``atexit``: gunicorn's workers leave through sys.exit),
and /metrics flushes the answering worker's own tally first.

Usage::

    TALLY = Tally()
    TALLY.add(MY_COUNTER.labels("a", "b"))        # +1; or TALLY.add(child, 5)
    TALLY.add_each([child_a, child_b, child_a])   # several increments, one lock
    TALLY.observe(MY_HISTOGRAM.labels("x"), 0.25) # histograms too (observe_each: several)

Keys are the metric's labelled children (look them up once and keep them: ``labels()`` costs
more than the tally itself).

Work whose cost is mostly per call, not per customer (numpy over a batch's columns: drift bins,
the shadow model), is gathered instead: ``TALLY.gather(consumer, item, rows)`` keeps the item,
and the flush hands every item kept since the last one to ``consumer`` in one list, before the
counts move on, so the calls run once a flush for all the batches of that second together
(churn/watch.py says what that saves).
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_INTERVAL = 1.0
# Gathered rows (customers) that wake the flusher before its interval, so the items a busy
# worker keeps stay a few MB; past the backlog the gathering request thread flushes itself.
GATHER_WAKE_ROWS = 50_000
GATHER_BACKLOG_ROWS = 500_000

Consumer = Callable[[list[Any]], None]

_ALL: weakref.WeakSet[Tally] = weakref.WeakSet()
_interval = DEFAULT_INTERVAL


@dataclass(frozen=True)
class HistogramParts:
    """What a labelled prometheus_client histogram adds observations to."""

    bounds: list[float]  # the buckets' upper bounds, +Inf last
    buckets: list[Any]  # a counter per bucket: observations in it, not cumulated
    total: Any  # the counter of the observed values' sum


def histogram_parts(child: Any) -> HistogramParts:
    """``child``'s bounds, bucket counters and sum counter.

    prometheus_client has no public way to add many observations at once, and one ``observe``
    per value is one locked write per value in multiprocess mode; so this, the one place that
    reads its private ``_upper_bounds``, ``_buckets`` and ``_sum``, hands them to the tally and
    the shadow. tests/test_tally.py compares what is added through them with ``observe`` in the
    exposition, so a release that lays a histogram out otherwise fails there.
    """
    return HistogramParts(child._upper_bounds, child._buckets, child._sum)


def set_interval(seconds: float) -> None:
    """Seconds between flushes, for every tally (the service sets METRICS_FLUSH_SECONDS)."""
    global _interval
    _interval = seconds


class Tally:
    """Counts ``(metric child) -> amount`` in this process; ``flush()`` moves them to Prometheus."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Any] = Counter()
        # histogram child -> (its parts, [count per bucket], [sum of observed values])
        self._observed: dict[Any, tuple[HistogramParts, list[int], list[float]]] = {}
        # id(children tuple) -> (children, counts so far): add_array's running sums
        self._arrays: dict[int, tuple[tuple[Any, ...], np.ndarray]] = {}
        self._gathered: dict[Consumer, list[Any]] = {}  # consumer -> items, in order
        self._gathered_rows = 0
        self._flusher: threading.Thread | None = None
        self._wake = threading.Event()
        _ALL.add(self)

    def add(self, child: Any, amount: float = 1) -> None:
        with self._lock:
            self._counts[child] += amount  # type: ignore[assignment]  # sums may be floats
        if self._flusher is None:
            self._start_flusher()

    def add_each(
        self,
        children: Iterable[Any],
        amounts: Mapping[Any, float] | None = None,
        observed: tuple[Any, float] | None = None,
    ) -> None:
        """One increment per child listed (a child listed twice gets two), ``amounts`` added
        and ``observed``, a (histogram child, value) pair, observed: all under one lock."""
        with self._lock:
            self._counts.update(children)
            if amounts:
                self._counts.update(amounts)
            if observed is not None:
                self._observe(observed[0], (observed[1],))
        if self._flusher is None:
            self._start_flusher()

    def add_counts(self, amounts: Mapping[Any, float]) -> None:
        """``add(child, amount)`` for each item, under one lock."""
        with self._lock:
            self._counts.update(amounts)
        if self._flusher is None:
            self._start_flusher()

    def add_array(
        self,
        children: tuple[Any, ...],
        counts: np.ndarray,
        amounts: Mapping[Any, float] | None = None,
    ) -> None:
        """``counts[i]`` increments of ``children[i]`` (counted with numpy) and ``amounts``
        added, under one lock: one array addition however many children. Pass the same tuple
        each time (it keys the running sum). A histogram's buckets and sum can be children
        here (``histogram_parts``): what ``flush`` adds ``observe``'s to."""
        with self._lock:
            entry = self._arrays.get(id(children))
            if entry is None:  # a copy: the caller's array is not ours to add to later
                self._arrays[id(children)] = (children, counts.astype(np.int64))
            else:
                running = entry[1]
                running += counts
            if amounts:
                self._counts.update(amounts)
        if self._flusher is None:
            self._start_flusher()

    def gather(self, consumer: Consumer, item: Any, rows: int) -> None:
        """Keep ``item`` (of ``rows`` customers) until the next flush, which calls ``consumer``
        once with every item kept for it, in order. ``consumer`` counts through this tally; if
        it raises, the error is logged and the other consumers and counts still flush."""
        with self._lock:
            self._gathered.setdefault(consumer, []).append(item)
            self._gathered_rows += rows
            waiting = self._gathered_rows
        if self._flusher is None:
            self._start_flusher()
        if waiting >= GATHER_BACKLOG_ROWS:  # the flusher does not keep up: no unbounded memory
            self.flush()
        elif waiting >= GATHER_WAKE_ROWS:
            self._wake.set()

    def observe(self, child: Any, value: float) -> None:
        """Like ``Histogram.observe``: the value lands in the first bucket whose bound >= it."""
        self.observe_each(child, (value,))

    def observe_each(self, child: Any, values: Iterable[float]) -> None:
        """``observe`` for several values under one lock."""
        with self._lock:
            self._observe(child, values)
        if self._flusher is None:
            self._start_flusher()

    def _observe(self, child: Any, values: Iterable[float]) -> None:
        """``observe_each``, with the lock held."""
        entry = self._observed.get(child)
        if entry is None:
            parts = histogram_parts(child)
            entry = self._observed[child] = (parts, [0] * len(parts.bounds), [0.0])
        bounds, buckets, total = entry[0].bounds, entry[1], entry[2]
        for value in values:
            buckets[bisect.bisect_left(bounds, value)] += 1
            total[0] += value

    def flush(self) -> None:
        """Hand everything tallied so far to the Prometheus metrics, gathered items first."""
        self._consume_gathered()
        with self._lock:
            counts, self._counts = self._counts, Counter()
            observed, self._observed = self._observed, {}
            arrays, self._arrays = self._arrays, {}
        for children, array in arrays.values():
            counts.update(dict(zip(children, array.tolist(), strict=True)))
        for child, amount in counts.items():
            if amount:
                child.inc(amount)
        for parts, buckets, total in observed.values():
            # One write per bucket instead of one per observation.
            for counter, count in zip(parts.buckets, buckets, strict=True):
                if count:
                    counter.inc(count)
            parts.total.inc(total[0])

    def _consume_gathered(self) -> None:
        with self._lock:
            gathered, self._gathered, self._gathered_rows = self._gathered, {}, 0
        for consumer, items in gathered.items():
            try:
                consumer(items)
            except Exception:  # a consumer's bug must not stop every other count
                logging.getLogger(__name__).exception("a gathered count failed: %r", consumer)

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._run, name="tally-flush", daemon=True)
            self._flusher.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(_interval)
            self._wake.clear()
            self.flush()

    def _after_fork(self) -> None:
        # A forked worker inherits the master's tally but not its thread: start afresh.
        self._lock = threading.Lock()
        self._counts = Counter()
        self._observed = {}
        self._arrays = {}
        self._gathered = {}
        self._gathered_rows = 0
        self._flusher = None
        self._wake = threading.Event()


def flush_all() -> None:
    """Flush every tally in this process: at worker exit, so no count is lost."""
    for tally in list(_ALL):
        tally.flush()


def _reset_after_fork() -> None:
    for tally in list(_ALL):
        tally._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(flush_all)
