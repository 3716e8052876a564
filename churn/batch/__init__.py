"""Batch scoring of customer files (``score.py``), local or on Spark (docs/batch.md)."""
