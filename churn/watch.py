"""Drift counting and the shadow model for the batches /predict's fast path checked, done once a
flush for all the batches of that second instead of once a request.

Counting a batch's drift bins and scoring it with the shadow are numpy calls over its columns
(churn/monitor.py ``count_checked``, churn/shadow.py ``compare_checked``), ~25 and ~15 of them,
each with a fixed cost. Done per request they added ~34 µs (drift) and ~46 µs (shadow) of CPU to
a 100-customer /predict call (~4% and ~5% of the worker's CPU per request; the budgets are 2%
and 3%, issue 16). So a request only leaves the codes matrix its checks made, its numbers and
the live probabilities (``Gathered``: no copy), through ``Tally.gather``; at the tally's flush,
about once a second and before /metrics answers, the gathered batches are joined, a few thousand
customers at a time (``JOIN_ROWS``), and counted. The counts are exactly those of each batch
counted alone, and reach Prometheus at that flush.

Timed inside a loaded server (thread CPU around each step, 100-customer bodies), this costs more
than the same steps timed in a loop, where the data stays in cache, suggest: before the codes
came as one matrix and the joins were grouped, the request's part took ~20 µs (copying 19 code
arrays into one: ~13 µs) and the flush's ~16 µs a request; now ~5 µs and ~12 µs
(docs/performance.md, issue 16, session 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from churn.checked import CheckedColumns
from churn.monitor import DriftMonitor
from churn.observability import TALLY
from churn.shadow import Shadow

# Customers joined and counted together at the flush. A second's batches joined in one go made
# arrays of MBs, so the joins and numpy's temporaries ran on fresh memory (page faults) out of
# the cache; a group this size stays in it.
JOIN_ROWS = 4096


class Gathered(NamedTuple):
    """What a request leaves for the flush."""

    checked: CheckedColumns  # its codes matrix and numbers, as the checks made them: no copy
    probabilities: np.ndarray  # the live model's
    compared: bool  # whether the shadow samples this request (SHADOW_SAMPLE, drawn per request)


class BatchWatch:
    """The fast path's watcher (``FastBatch.answer``'s ``watch``) for one live model: its
    batches all come from that model's fast path, so they can be joined."""

    def __init__(self, drift: DriftMonitor | None, shadow: Shadow | None, live_threshold: float):
        self.drift, self.shadow, self.live_threshold = drift, shadow, live_threshold

    def __call__(self, checked: CheckedColumns, probabilities: np.ndarray) -> None:
        compared = self.shadow is not None and self.shadow.sampled()
        if self.drift is not None or compared:
            batch = Gathered(checked, probabilities, compared)
            TALLY.gather(self._flush, batch, len(probabilities))

    def _flush(self, batches: list[Gathered]) -> None:
        for group in _groups(batches, JOIN_ROWS):
            self._count(group)

    def _count(self, batches: list[Gathered]) -> None:
        compared = [batch for batch in batches if batch.compared]
        everything = None
        if self.drift is not None:
            everything = self._joined(batches)
            self.drift.count_checked(everything)
        if self.shadow is None or not compared:
            return
        if everything is None or len(compared) < len(batches):
            everything = self._joined(compared)
        probabilities = np.concatenate([batch.probabilities for batch in compared])
        churn = probabilities >= self.live_threshold
        self.shadow.compare_checked(everything, probabilities, churn, requests=len(compared))

    @staticmethod
    def _joined(batches: list[Gathered]) -> CheckedColumns:
        return CheckedColumns.joined([batch.checked for batch in batches])


def _groups(batches: list[Gathered], rows: int) -> Iterator[list[Gathered]]:
    """The batches in order, in groups of at least ``rows`` customers but the last."""
    group: list[Gathered] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += len(batch.probabilities)
        if size >= rows:
            yield group
            group, size = [], 0
    if group:
        yield group
