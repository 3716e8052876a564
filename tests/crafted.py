"""A malicious model file for the tests: a pickle whose loading would run a shell command."""

from __future__ import annotations

import os
import pickle
from pathlib import Path


class _TouchesMarker:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def code_running_pickle(marker: Path) -> bytes:
    """Pickle bytes that create ``marker`` if anything ever unpickles them unrestricted."""
    return pickle.dumps(_TouchesMarker(marker))
