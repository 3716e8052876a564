"""Batch scoring of customer files (``score.py``): ``score_record_batch`` (columns.py) is the one
function both engines run, the local one (cli.py, files.py) and Spark's (spark.py).
"""
