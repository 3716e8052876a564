"""Outcomes: what happened to the customers the service scored, joined to what it predicted.

``python -m churn.outcomes init`` makes the tables (churn/sql/outcomes.sql), ``load`` reads a
file of outcomes from the CRM, ``report`` writes the realized performance of each model version
(docs/outcomes.md). Prediction capture itself is churn/capture.py.
"""

from __future__ import annotations

import psycopg

from churn.capture import connect, one_line


class OutcomesError(Exception):
    """A file, option or database the command cannot use; the message says what to do."""


def open_database(url: str) -> psycopg.Connection:
    """A connection to ``url``, or ``OutcomesError`` saying why not (never the password)."""
    try:
        return connect(url)
    except psycopg.Error as error:
        raise OutcomesError(f"--database: cannot connect: {one_line(error, url)}") from None
