"""Several variants of the service in one gunicorn server, switched between while it runs: the
monitoring benchmark's instrument (bench/monitoring_cost.py).

Comparing variants on separate servers measured the servers as much as the variants: two
identical servers differed by a few percent, and fresh ones each round still left a ±5–10%
spread per round (issue 16). Here the same worker processes, sockets and gunicorn answer every
variant; only the Flask app each request goes to changes. ``SWITCH_VARIANTS`` is a JSON list of
environments, one app each (over the server's own environment); the first byte of the file
``SWITCH_FILE``, mapped into every worker, is the index of the app requests go to, so the
benchmark switches all workers at once by writing that byte.

Each worker also times, with its threads' CPU clocks, what batch monitoring does inside it
(churn/watch.py: the request's part and the flush's) per variant, and writes the sums to
<pid>.json in the folder ``SWITCH_SPENT`` when it exits: that work's share of the worker's CPU,
measured in the loaded server itself, where caches are as cold as they really are.
"""

from __future__ import annotations

import atexit
import functools
import json
import mmap
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from churn.tally import flush_all
from churn.watch import BatchWatch

from churn.app import create_app
from churn.config import Settings

# Per variant: requests answered, and thread CPU nanoseconds in BatchWatch's two parts.
SPENT: dict[str, list[int]] = {"requests": [], "request_ns": [], "flush_ns": []}
_variant_being_built = 0


def _timed(part: str, variant_of: Callable[[Any], int]) -> Callable:
    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def timed(watch: BatchWatch, *args: Any) -> Any:
            started = time.thread_time_ns()
            try:
                return method(watch, *args)
            finally:
                SPENT[part][variant_of(watch)] += time.thread_time_ns() - started

        return timed

    return wrap


def _apps() -> list[Any]:
    global _variant_being_built
    variants = json.loads(os.environ["SWITCH_VARIANTS"])
    for spent in SPENT.values():
        spent.extend([0] * len(variants))
    apps = []
    for _variant_being_built, env in enumerate(variants):
        apps.append(create_app(Settings.from_env({**os.environ, **env})))
    return apps


def _instrument() -> None:
    built = BatchWatch.__init__

    def init(watch: BatchWatch, *args: Any) -> None:
        built(watch, *args)
        watch.variant = _variant_being_built  # type: ignore[attr-defined]

    BatchWatch.__init__ = init  # type: ignore[method-assign, assignment]
    # The request's part runs for the variant selected; the flush for the watch's own.
    request = _timed("request_ns", lambda watch: SELECTED[0])
    BatchWatch.__call__ = request(BatchWatch.__call__)  # type: ignore[method-assign]
    flush = _timed("flush_ns", lambda watch: watch.variant)
    BatchWatch._flush = flush(BatchWatch._flush)  # type: ignore[method-assign]


def _selector() -> mmap.mmap:
    # Mapped in the master (the app is preloaded), so every worker shares the one page.
    with open(os.environ["SWITCH_FILE"], "r+b") as selector:
        return mmap.mmap(selector.fileno(), 1)


def _write_spent() -> None:
    if any(SPENT["requests"]):  # a worker; the master answered nothing
        flush_all()  # its last gathered batches: atexit would flush them after this
        path = os.path.join(os.environ["SWITCH_SPENT"], f"{os.getpid()}.json")
        with open(path + ".part", "w") as part:
            json.dump(SPENT, part)
        os.replace(path + ".part", path)


SELECTED = _selector()
_instrument()
APPS = _apps()
atexit.register(_write_spent)


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    variant = SELECTED[0]
    SPENT["requests"][variant] += 1
    return APPS[variant](environ, start_response)
