"""The Flask web service: ``create_app`` builds it, ``predict.py`` exposes it to gunicorn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from churn.auth import require_api_key
from churn.capture import Capture
from churn.config import Settings
from churn.endpoint import PATH, PredictEndpoint
from churn.errors import INTERNAL_ERROR, ApiError, error_payload
from churn.logs import use_gunicorn_logging
from churn.monitor import DriftMonitor
from churn.observability import (
    REQUEST_ID_HEADER,
    REQUEST_ID_KEY,
    SERVER_TIMING_KEY,
    finish_request,
    publish_model_info,
    render_metrics,
    request_id_for,
    start_request,
)
from churn.openapi import build_spec
from churn.predictor import Predictor
from churn.shadow import Shadow
from churn.tally import set_interval
from churn.web import pages

api = Blueprint("api", __name__)
PROTECTED_ENDPOINTS = {"api.model_info", "api.metrics", "api.drift"}  # and /predict (endpoint.py)
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


class OrjsonProvider(JSONProvider):
    """orjson for Flask's JSON (the pages' ``tojson``): keys keep their order, as in responses.

    Responses themselves are built with ``json_response``, never through Flask's provider.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def json_response(body: Any, status: int = 200) -> Response:
    return current_app.response_class(
        orjson.dumps(body), status=status, mimetype="application/json"
    )


def predictor() -> Predictor:
    return current_app.extensions["churn.predictor"]


def current_settings() -> Settings:
    return current_app.extensions["churn.settings"]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the service with ``settings`` (default: read from the environment, config.py).

    Loading the model here, at import time under gunicorn's ``preload_app``, means a missing or
    unsafe model stops the master before any worker serves errors.
    """
    service_settings = Settings.from_env() if settings is None else settings
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.extensions["churn.settings"] = service_settings
    set_interval(service_settings.metrics_flush_seconds)
    live = Predictor.load(service_settings.model_file, threshold=service_settings.threshold)
    app.extensions["churn.predictor"] = live
    shadow = _load_shadow(service_settings, app)
    app.extensions["churn.shadow"] = shadow
    drift = DriftMonitor(live.drift_reference) if live.drift_reference else None
    app.extensions["churn.drift"] = drift
    publish_model_info({"live": live, **({"shadow": shadow.predictor} if shadow else {})})
    app.register_blueprint(api)
    app.register_blueprint(pages)
    use_gunicorn_logging(app)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    # One hook each way: Flask pays a few microseconds per registered hook per request.
    app.before_request(_before_request)
    app.after_request(_after_request)
    capture = Capture.start_up(  # None when CAPTURE_DATABASE_URL is unset
        service_settings.capture_database_url,
        "predict",
        service_settings.capture_features,
        app.logger,
        "CAPTURE_DATABASE_URL",
    )
    endpoint = PredictEndpoint(live, service_settings, app.logger, drift, shadow, capture)
    app.wsgi_app = with_response_headers(  # type: ignore[method-assign]  # Flask's way
        serve_predict_with(endpoint, app.wsgi_app)
    )
    return app


def _load_shadow(service_settings: Settings, app: Flask) -> Shadow | None:
    """The candidate model, checked exactly as the live one (it stops start-up the same way)."""
    if service_settings.shadow_model_file is None:
        return None
    candidate = Predictor.load(service_settings.shadow_model_file)
    return Shadow(candidate, service_settings.shadow_sample, app.logger)


def serve_predict_with(endpoint: PredictEndpoint, flask_app: Callable) -> Callable:
    """WSGI dispatch: /predict to ``endpoint`` (no Flask in the hot path), the rest to Flask."""

    def app(environ: dict, start_response: Callable) -> Any:
        if environ.get("PATH_INFO") == PATH:
            return endpoint(environ, start_response)
        return flask_app(environ, start_response)

    return app


def _api_error(error: ApiError) -> Response:
    response = json_response(error.payload(), error.status)
    response.headers.extend(error.headers)
    return response


def _http_error(error: HTTPException) -> Response:
    name = (error.name or "error").lower().replace(" ", "_")
    response = json_response(error_payload(name, error.description or name), error.code or 500)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _unexpected_error(error: Exception) -> Response:
    # Never a stack trace in a response; the traceback goes to the error log.
    current_app.logger.exception("unhandled error")
    return json_response(INTERNAL_ERROR, 500)


def _before_request() -> None:
    start_request()
    if request.endpoint in PROTECTED_ENDPOINTS:
        require_api_key(request.environ, current_settings().api_key)


def _after_request(response: Response) -> Response:
    finish_request(response)
    return response


@api.get("/health")
def health() -> Response:
    return json_response({"status": "ok", "model_version": predictor().version})


@api.get("/model")
def model_info() -> Response:
    """The live model (as before, at the top level) and the shadow, if one is loaded."""
    shadow = current_app.extensions["churn.shadow"]
    live = {**predictor().describe(), "role": "live"}
    return json_response({**live, "shadow": shadow.describe() if shadow else None})


@api.get("/drift")
def drift() -> Response:
    monitor = current_app.extensions["churn.drift"]
    if monitor is None:
        message = "the live model was trained without drift bins; retrain with `python train.py`"
        return json_response(error_payload("no_drift_reference", message), 404)
    return json_response(
        {"model_version": predictor().version, **monitor.snapshot(current_settings().metrics_dir)}
    )


@api.get("/openapi.json")
def openapi() -> Response:
    model = predictor()
    return json_response(
        build_spec(model.validator.model, model.version, current_settings().max_batch_size)
    )


@api.get("/metrics")
def metrics() -> Response:
    return render_metrics(current_settings().metrics_dir)
