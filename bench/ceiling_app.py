"""The ceiling: a raw WSGI app that reads the body, parses it with orjson and returns a constant.

Run under exactly our gunicorn settings (gunicorn.conf.py, its JSON access log), nothing that
answers /predict can be faster: the benchmark reports how close the real service gets to it.
"""

from collections.abc import Callable, Iterable

import orjson

ANSWER = orjson.dumps({"churn_probability": 0.5, "churn": False})
HEALTHY = orjson.dumps({"status": "ok"})


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/predict":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        orjson.loads(environ["wsgi.input"].read(length))
        body = ANSWER
    else:
        body = HEALTHY
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]
