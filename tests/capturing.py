"""Helpers for the capture tests: varied customers with ids, a live server capturing to a
database, what the database holds, and a steady load of one-customer requests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
import requests

from bench.servers import Server, gunicorn_command, poll, running
from churn.features import EXAMPLE_CUSTOMER


def customers(prefix: str, count: int, seed: int = 0, with_ids: bool = True) -> list[dict]:
    """Customers whose churn probabilities spread widely (tenure, charges, contract vary)."""
    rng = np.random.default_rng(seed)
    made = []
    for number in range(count):
        customer = dict(EXAMPLE_CUSTOMER)
        customer.pop("customer_id", None)
        tenure = int(rng.integers(0, 73))
        monthly = round(float(rng.uniform(18.0, 118.0)), 2)
        customer.update(
            tenure=tenure,
            monthlycharges=monthly,
            totalcharges=round(tenure * monthly, 2),
            contract=str(rng.choice(["month-to-month", "one_year", "two_year"])),
            internetservice=str(rng.choice(["dsl", "fiber_optic", "no"])),
        )
        if customer["internetservice"] == "no":
            for name in ("onlinesecurity", "onlinebackup", "deviceprotection", "techsupport"):
                customer[name] = "no_internet_service"
            customer["streamingtv"] = customer["streamingmovies"] = "no_internet_service"
        if with_ids:
            customer["customer_id"] = f"{prefix}-{number:05d}"
        made.append(customer)
    return made


@contextlib.contextmanager
def capturing_server(log_dir: Path, url: str, **env: str) -> Iterator[Server]:
    """The real service (gunicorn.conf.py, two workers) capturing to ``url``."""
    settings = {"WEB_CONCURRENCY": "2", "CAPTURE_DATABASE_URL": url, **env}
    with running(gunicorn_command(), log_dir, env=settings) as server:
        yield server


def captured(url: str) -> list[dict]:
    """Every row of churn_predictions."""
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT request_id, customer_id, model_version, probability, churn, threshold, "
            "source, features FROM churn_predictions"
        )
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def wait_for_rows(url: str, count: int, timeout: float = 60) -> list[dict]:
    """The table's rows once it holds at least ``count`` (or the deadline passed)."""
    return poll(lambda: captured(url), lambda rows: len(rows) >= count, timeout, 0.2)


@dataclass
class Load:
    """Threads sending one customer per request with its own id and request id, until stopped.

    ``answered``: request id -> (seconds since the epoch it was answered, status); requests that
    got no answer (connection reset by a killed worker) are in ``unanswered``.
    """

    url: str
    prefix: str
    threads: int = 2
    answered: dict[str, tuple[float, int]] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for number in range(self.threads):
            thread = threading.Thread(target=self._send, args=(number,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(30)

    def _send(self, thread: int) -> None:
        session = requests.Session()
        base = customers(f"{self.prefix}{thread}", 50, seed=thread)
        number = 0
        while not self._stop.is_set():
            customer = dict(base[number % len(base)])
            request_id = f"{self.prefix}{thread}-{number:06d}"
            customer["customer_id"] = request_id
            number += 1
            try:
                response = session.post(
                    self.url + "/predict",
                    json=customer,
                    headers={"X-Request-ID": request_id},
                    timeout=10,
                )
            except requests.RequestException:
                self.unanswered.append(request_id)
                session = requests.Session()
                continue
            self.answered[request_id] = (time.time(), response.status_code)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` more requests have been answered."""
        target = len(self.answered) + count
        poll(lambda: len(self.answered), lambda n: n >= target, timeout, 0.05)
