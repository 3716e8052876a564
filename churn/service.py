"""The Flask web service: ``create_app`` builds it, ``predict.py`` exposes it to gunicorn."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException

from churn.config import ServiceSettings
from churn.observability import (
    REQUEST_ID_HEADER,
    REQUEST_ID_KEY,
    SERVER_TIMING_KEY,
    finish_request,
    record_predictions,
    render_metrics,
    request_id_for,
    start_request,
    use_gunicorn_logging,
)
from churn.openapi import build_spec
from churn.predictor import Predictor
from churn.schema import RequestValidationError
from churn.web import pages

api = Blueprint("api", __name__)
PROTECTED_ENDPOINTS = {"api.predict", "api.model_info", "api.metrics"}
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
]


def with_response_headers(wsgi_app: Callable) -> Callable:
    """WSGI middleware: security headers, X-Request-ID and Server-Timing on every response.

    Appending to the WSGI header list is cheap; setting the same headers through Flask's
    Headers object parses and checks each one again, which cost a quarter of /predict's time.
    """

    def app(environ: dict, start_response: Callable) -> Any:
        environ[REQUEST_ID_KEY] = request_id_for(environ)

        def start_with_headers(status: str, headers: list, exc_info: Any = None) -> Any:
            headers.extend(SECURITY_HEADERS)
            headers.append((REQUEST_ID_HEADER, environ[REQUEST_ID_KEY]))
            timing = environ.get(SERVER_TIMING_KEY)
            if timing is not None:
                headers.append(("Server-Timing", f"app;dur={timing:.3f}"))
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, start_with_headers)

    return app


class ApiError(Exception):
    """A client mistake, answered as a JSON error with ``status``."""

    def __init__(self, status: int, error: str, message: str, problems: list | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.problems = status, error, message, problems


class OrjsonProvider(JSONProvider):
    """orjson for every JSON response: several times faster than the standard library."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(orjson.dumps(obj), mimetype="application/json")


def json_response(body: Any, status: int = 200) -> Response:
    return current_app.response_class(
        orjson.dumps(body), status=status, mimetype="application/json"
    )


def predictor() -> Predictor:
    return current_app.extensions["churn.predictor"]


def settings() -> ServiceSettings:
    return current_app.extensions["churn.settings"]


def create_app(test_config: Mapping[str, str] | None = None) -> Flask:
    """Build the service. ``test_config`` overrides environment variables (see config.py).

    Loading the model here, at import time under gunicorn's ``preload_app``, means a missing or
    unsafe model stops the master before any worker serves errors.
    """
    service_settings = ServiceSettings.from_env({**os.environ, **(test_config or {})})
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = service_settings.max_body_bytes
    app.extensions["churn.settings"] = service_settings
    app.extensions["churn.predictor"] = Predictor.load(
        service_settings.model_file, threshold=service_settings.threshold
    )
    app.register_blueprint(api)
    app.register_blueprint(pages)
    use_gunicorn_logging(app)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    # One hook each way: Flask pays a few microseconds per registered hook per request.
    app.before_request(_before_request)
    app.after_request(_after_request)
    app.wsgi_app = with_response_headers(app.wsgi_app)
    return app


def _api_error(error: ApiError) -> Response:
    body: dict[str, Any] = {"error": error.error, "message": error.message}
    if error.problems is not None:
        body["problems"] = error.problems
    return json_response(body, error.status)


def _http_error(error: HTTPException) -> Response:
    name = (error.name or "error").lower().replace(" ", "_")
    response = json_response({"error": name, "message": error.description}, error.code or 500)
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _unexpected_error(error: Exception) -> Response:
    # Never a stack trace in a response; the traceback goes to the error log.
    current_app.logger.exception("unhandled error")
    return json_response({"error": "internal_error", "message": "unexpected server error"}, 500)


def _before_request() -> None:
    start_request()
    _require_api_key()


def _after_request(response: Response) -> Response:
    finish_request(response)
    return response


def _require_api_key() -> None:
    expected = settings().api_key
    if expected is None or request.endpoint not in PROTECTED_ENDPOINTS:
        return
    given = request.headers.get("X-API-Key") or ""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        given = authorization.removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401, "unauthorized", "missing or wrong API key (Authorization: Bearer … or X-API-Key)"
        )


def _is_json(content_type: str) -> bool:
    # The exact common value first: parsing the header's options costs more than the check.
    if content_type == "application/json":
        return True
    mimetype = request.mimetype
    return mimetype == "application/json" or mimetype.endswith("+json")


def _read_json() -> Any:
    if not _is_json(request.environ.get("CONTENT_TYPE", "")):
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    body = request.get_data(cache=False)  # 413 when Content-Length exceeds the limit
    if request.content_length is None and len(body) >= settings().max_body_bytes:
        # A chunked body is cut at the limit rather than refused; one that reaches it is too big.
        raise ApiError(413, "request_entity_too_large", "request body is too large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {error}") from None


def _explain_flag() -> bool:
    if not request.environ.get("QUERY_STRING"):
        return False  # the usual case: no need to parse the query string
    raw = request.args.get("explain", "false").strip().lower()
    if raw not in {"true", "1", "yes", "false", "0", "no", ""}:
        raise ApiError(400, "invalid_parameter", "explain must be true or false")
    return raw in {"true", "1", "yes"}


@api.post("/predict")
def predict() -> Response:
    started = time.perf_counter()
    payload = _read_json()
    explain = _explain_flag()
    model = predictor()
    batch = isinstance(payload, list)
    try:
        if batch:
            _check_batch_size(payload)
        customers = model.validator.many(payload) if batch else [model.validator.one(payload)]
    except RequestValidationError as error:
        raise ApiError(
            422, "validation_error", "the request has invalid customers", error.problems
        ) from None
    results = model.predict(customers, explain)
    record_predictions(results)
    # Time spent in the app (parse, validate, score), for clients and the benchmark harness.
    request.environ[SERVER_TIMING_KEY] = (time.perf_counter() - started) * 1000
    return json_response(results if batch else results[0])


def _check_batch_size(payload: list) -> None:
    limit = settings().max_batch_size
    if not payload or len(payload) > limit:
        message = f"a batch must hold between 1 and {limit} customers, got {len(payload)}"
        raise ApiError(422, "validation_error", message, [{"field": "(batch)", "message": message}])


@api.get("/health")
def health() -> Response:
    return json_response({"status": "ok", "model_version": predictor().version})


@api.get("/model")
def model_info() -> Response:
    return json_response(predictor().describe())


@api.get("/openapi.json")
def openapi() -> Response:
    model = predictor()
    return json_response(
        build_spec(model.validator.model, model.version, settings().max_batch_size)
    )


@api.get("/metrics")
def metrics() -> Response:
    return render_metrics()
