"""Retrain the churn model: ``python train.py --help`` lists the options."""

import sys

from churn.training import main

if __name__ == "__main__":
    sys.exit(main())
