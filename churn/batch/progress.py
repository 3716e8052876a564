"""A progress line on stderr for long batch runs, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REFRESH_SECONDS = 0.5


class Progress:
    """``\\r  1,234,567 / 10,000,000 rows (12%)  1,050,000 rows/s`` rewritten in place."""

    def __init__(self, total: int | None, stream: TextIO | None = None):
        self.total, self.stream = total, stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = self._shown_at = time.perf_counter()
        self._drawn = False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self._shown_at < REFRESH_SECONDS:
            return
        self._shown_at, self._drawn = now, True
        share = f" ({done * 100 // self.total}%)" if self.total else ""
        of = f" / {self.total:,}" if self.total else ""
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(f"\r  {done:,}{of} rows{share}  {rate:,.0f} rows/s ")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
