"""The churn prediction web service: ``gunicorn predict:app`` (see gunicorn.conf.py).

``python predict.py`` runs Flask's development server on $PORT (9696); FLASK_DEBUG=1 for debug.
"""

import os
import sys

from churn.app import create_app
from churn.artifact import ModelFileError
from churn.config import DEFAULT_PORT, ConfigError

try:
    app = create_app()
except (ModelFileError, ConfigError) as error:
    # One clear line instead of a traceback; gunicorn stops before booting workers.
    sys.exit(f"churn-serving cannot start: {error}")

if __name__ == "__main__":
    debug = os.environ.get("FLASK_DEBUG", "") in {"1", "true"}
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - the course serves beyond loopback
    app.run(host=host, port=int(os.environ.get("PORT", DEFAULT_PORT)), debug=debug)
