"""Score a whole customer file: ``python score.py --input customers.csv --output scores.parquet``.

The logic lives in churn/batch/ (docs/batch.md); ``spark-submit score.py --engine
spark ...`` runs the same scoring on a Spark cluster.
"""

import sys

from churn.batch.cli import main

if __name__ == "__main__":
    sys.exit(main())
