"""Drift counting and the shadow model for the batches /predict's fast path checked, done once a
flush for all the batches of that second instead of once a request.

Counting a batch's drift bins and scoring it with the shadow are numpy calls over its columns
(churn/monitor.py ``count_checked``, churn/shadow.py ``compare_checked``), ~25 and ~15 of them,
each with a fixed cost. Done per request they added ~34 µs (drift) and ~46 µs (shadow) of CPU to
a 100-customer /predict call (~4% and ~5% of the worker's CPU per request; the budgets are 2%
and 3%, issue 16). So a request only leaves its codes as one small matrix, its numbers and the
live probabilities (``Gathered``, ~3 µs), through ``Tally.gather``; at the tally's flush, about
once a second and before /metrics answers, the gathered batches are joined and counted in one go.
The counts are exactly those of each batch counted alone, and reach Prometheus at that flush.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from churn.checked import CheckedColumns
from churn.monitor import DriftMonitor
from churn.observability import TALLY
from churn.shadow import Shadow


class Gathered(NamedTuple):
    """What a request leaves for the flush."""

    codes: np.ndarray  # ``CheckedColumns.compact``: a row of codes per categorical field
    numbers: np.ndarray
    probabilities: np.ndarray  # the live model's
    compared: bool  # whether the shadow samples this request (SHADOW_SAMPLE, drawn per request)


class BatchWatch:
    """The fast path's watcher (``FastBatch.answer``'s ``watch``) for one live model.

    Its batches all come from that model's fast path, so they share one layout (fields,
    vocabularies): the first batch's columns lend it to the joined batches.
    """

    def __init__(self, drift: DriftMonitor | None, shadow: Shadow | None, live_threshold: float):
        self.drift, self.shadow, self.live_threshold = drift, shadow, live_threshold
        self._layout: CheckedColumns | None = None

    def __call__(self, checked: CheckedColumns, probabilities: np.ndarray) -> None:
        compared = self.shadow is not None and self.shadow.sampled()
        if self.drift is not None or compared:
            if self._layout is None:
                self._layout = checked
            batch = Gathered(*checked.compact(), probabilities, compared)
            TALLY.gather(self._flush, batch, len(probabilities))

    def _flush(self, batches: list[Gathered]) -> None:
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

    def _joined(self, batches: list[Gathered]) -> CheckedColumns:
        if self._layout is None:  # set with the first batch gathered
            raise RuntimeError("no batch was gathered")
        codes = [batch.codes for batch in batches]
        return self._layout.joined(codes, [batch.numbers for batch in batches])
