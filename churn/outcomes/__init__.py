"""Outcomes: what happened to the customers the service scored, joined to what it predicted.

``python -m churn.outcomes init|load|report`` (docs/outcomes.md); capture is churn/capture.py.
"""
