"""Batch scoring of customer files: the columnar scorer, file reading and writing, the CLI.

``score_record_batch`` (columns.py) is the one function both engines run on Arrow batches: the
local engine (cli.py) and Spark's executors (spark.py).
"""
