"""Ask the running service whether to send the course's customer a promo email.

python predict_test.py [--url URL] [--customer FILE.json] [--customer-id ID]
"""

import sys

from churn.client import main

if __name__ == "__main__":
    sys.exit(main())
