"""The churn prediction web service: ``gunicorn predict:app`` (see gunicorn.conf.py).

``app`` is built by ``churn.app.create_app``. POST /predict is answered by its ``Service``, a
plain WSGI app placed in front of Flask's routing (so it is not in ``app.url_map``): the hot path
skips Flask's per-request work, which was most of its time (docs/performance.md). Every other
route is Flask's (churn/app.py, churn/web.py).

``python predict.py`` runs Flask's development server on $HOST:$PORT (0.0.0.0:9696).
"""

import sys

from churn.app import create_app
from churn.artifact import ModelFileError
from churn.config import ConfigError, Settings

try:
    settings = Settings.from_env()
    app = create_app(settings)
except (ModelFileError, ConfigError) as error:
    # One clear line instead of a traceback; gunicorn stops before booting workers.
    sys.exit(f"churn-serving cannot start: {error}")

if __name__ == "__main__":
    app.run(host=settings.host, port=settings.port, debug=settings.flask_debug)
