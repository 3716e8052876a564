"""The web service: ``create_app`` builds it, ``predict.py`` exposes it to gunicorn.

Every request passes through ``Service`` first, a small WSGI app that gives it its request id
and security headers, checks the API key and the body's size, and turns any ``ApiError`` into
the one JSON error format. It answers POST /predict itself: Flask's per-request machinery cost
more than checking and scoring a customer (docs/performance.md). Flask serves the other routes.
"""

from __future__ import annotations

import functools
import hmac
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from churn.capture import Capture
from churn.config import Settings
from churn.logs import MODEL_VERSION_KEY, REQUEST_ID_KEY
from churn.metrics import (
    Watch,
    count_predictions,
    count_rejections,
    count_request,
    exposition,
    live_drift,
    publish_models,
)
from churn.predictor import Predictor
from churn.shadow import Shadow
from churn.web import api_spec, pages

PREDICT = "/predict"
PROTECTED = frozenset({PREDICT, "/model", "/drift", "/metrics"})
REQUEST_ID_HEADER = "X-Request-ID"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
]
ALLOWED_METHODS = "OPTIONS, POST"
# A 401 names the scheme the client should use (RFC 9110 section 11.6.1; RFC 6750 for Bearer).
API_KEY_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="churn-serving"')
TRUE_WORDS, FALSE_WORDS = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})

api = Blueprint("api", __name__)


def request_id_for(environ: dict) -> str:
    """The caller's X-Request-ID if it is sane (so logs join up across hops), else a new one."""
    given = environ.get("HTTP_X_REQUEST_ID")
    if given and SAFE_REQUEST_ID.fullmatch(given):
        return given
    # 128 random bits from Python's generator, reseeded in every forked worker: an id joins log
    # lines up and guards nothing, and the kernel's random source costs a system call each.
    return f"{random.getrandbits(128):032x}"


class ApiError(Exception):
    """A client mistake, answered in the one JSON error format every route uses (README, Errors)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        problems: list | None = None,
        headers: list[tuple[str, str]] | None = None,
    ):
        super().__init__(message)
        self.status, self.body = status, error_payload(error, message, problems)
        self.headers = headers or []  # extra response headers, e.g. a 401's WWW-Authenticate


def error_payload(error: str, message: str, problems: list | None = None) -> dict[str, Any]:
    """``{"error": ..., "message": ...}`` plus ``problems`` (field, message, index) when known."""
    body: dict[str, Any] = {"error": error, "message": message}
    if problems is not None:
        body["problems"] = problems
    return body


INTERNAL_ERROR = error_payload("internal_error", "unexpected server error")


def require_api_key(environ: dict, expected: str | None) -> None:
    """A 401 unless the request carries ``expected`` (``API_KEY``; unset: no check) as
    ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    if expected is None:
        return
    given = environ.get("HTTP_X_API_KEY") or ""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if authorization.startswith("Bearer "):
        given = authorization.removeprefix("Bearer ").strip()
    # Constant-time comparison: the time taken says nothing about how much of a guess was right.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "missing or wrong API key (Authorization: Bearer … or X-API-Key)",
            headers=[API_KEY_CHALLENGE],
        )


@dataclass(frozen=True)
class Service:
    """The WSGI app gunicorn runs: the checks every route shares, /predict, then Flask."""

    flask_app: Callable
    predictor: Predictor
    settings: Settings
    watch: Watch
    logger: logging.Logger
    capture: Capture | None  # answered customers to PostgreSQL (churn/capture.py)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        environ[REQUEST_ID_KEY] = request_id_for(environ)
        environ[MODEL_VERSION_KEY] = self.predictor.version
        path = environ.get("PATH_INFO", "")
        try:
            if path in PROTECTED:
                require_api_key(environ, self.settings.api_key)
            self._check_length(environ)
            if path != PREDICT:
                return self.flask_app(environ, self._with_headers(environ, start_response))
            status, body, headers = self.predict(environ)
        except ApiError as error:
            status, body, headers = error.status, orjson.dumps(error.body), error.headers
        except Exception:  # never a stack trace in a response; the traceback goes to the log
            request_id = environ[REQUEST_ID_KEY]
            self.logger.exception("unhandled error", extra={"request_id": request_id})
            status, body, headers = 500, orjson.dumps(INTERNAL_ERROR), []
        if status == 200:
            elapsed = (time.perf_counter() - started) * 1000
            headers = [*headers, ("Server-Timing", f"app;dur={elapsed:.3f}")]
        route = path if path in PROTECTED else "unmatched"  # refused before Flask's routing
        count_request(route, environ["REQUEST_METHOD"], status, time.perf_counter() - started)
        headers = [*_body_headers(status, body), *headers]
        if path == PREDICT:
            headers.append(("X-Model-Version", self.predictor.version_header))
        self._with_headers(environ, start_response)(_status_line(status), headers)
        return [body]

    def predict(self, environ: dict) -> tuple[int, bytes, list[tuple[str, str]]]:
        """POST customers, get churn decisions (README, API)."""
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            return 204, b"", [("Allow", ALLOWED_METHODS)]
        if method != "POST":
            raise ApiError(405, "method_not_allowed", f"{PREDICT} accepts POST (and OPTIONS), "
                           f"not {method}", headers=[("Allow", ALLOWED_METHODS)])  # fmt: skip
        payload = self._read_json(environ)
        explain = _explain_flag(environ.get("QUERY_STRING", ""))
        batch = type(payload) is list
        if batch and not 1 <= len(payload) <= self.settings.max_batch_size:
            message = (f"a batch must hold between 1 and {self.settings.max_batch_size} "
                       f"customers, got {len(payload)}")  # fmt: skip
            raise ApiError(
                422, "validation_error", message, [{"field": "(batch)", "message": message}]
            )
        checked = self.predictor.validator.check_json(payload if batch else [payload])
        if checked.problems:
            count_rejections(checked.problems)
            problems = [
                {**({"index": p.row} if batch else {}), "field": p.field, "message": p.message}
                for p in checked.problems
            ]
            raise ApiError(422, "validation_error", "the request has invalid customers", problems)
        probabilities = self.predictor.probabilities(checked)
        results = self.predictor.results(checked, probabilities, explain)
        count_predictions(results)
        self.watch.add(checked, probabilities)
        if self.capture is not None:  # queued only: written off the request path
            self.capture.submit(environ[REQUEST_ID_KEY], self.predictor.version,
                                self.predictor.threshold, results, payload)  # fmt: skip
        return 200, orjson.dumps(results if batch else results[0]), []

    def _read_json(self, environ: dict) -> Any:
        content_type = environ.get("CONTENT_TYPE", "")
        mimetype = content_type.split(";", 1)[0].strip().lower()
        if not (mimetype == "application/json" or mimetype.endswith("+json")):
            raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
        length = environ.get("CONTENT_LENGTH")
        limit = self.settings.max_body_bytes
        body = _read(environ["wsgi.input"], int(length) if length else limit + 1)
        if len(body) > limit:
            raise _too_large(limit)  # chunked: one byte past the limit was read
        if length and len(body) < int(length):
            raise ApiError(400, "bad_request", "request body is shorter than Content-Length")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise ApiError(
                400, "invalid_json", f"request body is not valid JSON: {error}"
            ) from None

    def _check_length(self, environ: dict) -> None:
        """A declared body over the limit is refused before it is read, on every route."""
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            if not (declared.isascii() and declared.isdigit()):
                raise ApiError(400, "bad_request", "Content-Length is not a number")
            if int(declared) > self.settings.max_body_bytes:
                raise _too_large(self.settings.max_body_bytes)
        elif not environ.get("wsgi.input_terminated"):
            environ["CONTENT_LENGTH"] = "0"  # no length and no chunked framing: no body

    @staticmethod
    def _with_headers(environ: dict, start_response: Callable) -> Callable:
        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            headers += [*SECURITY_HEADERS, (REQUEST_ID_HEADER, environ[REQUEST_ID_KEY])]
            return start_response(status, headers, exc_info)

        return start


def create_app(settings: Settings | None = None) -> Flask:
    """Build the service with ``settings`` (default: read from the environment).

    The model is loaded here, at import time under gunicorn's ``preload_app``, so a missing or
    unsafe model stops the master before any worker serves errors.
    """
    settings = Settings.from_env() if settings is None else settings
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # the pages' JSON in field order
    live = Predictor.load(settings.model_file, threshold=settings.threshold)
    shadow = None
    if settings.shadow_model_file is not None:  # checked as the live one: stops start-up alike
        candidate = Predictor.load(settings.shadow_model_file)
        shadow = Shadow.of(candidate, live, settings.shadow_sample)
    publish_models(live, shadow.predictor if shadow else None, settings.metrics_dir)
    watch = Watch(live.drift_bins, shadow, app.logger)
    app.extensions["churn.settings"] = settings
    app.extensions["churn.predictor"] = live
    app.extensions["churn.shadow"] = shadow
    app.extensions["churn.watch"] = watch
    app.register_blueprint(api)
    app.register_blueprint(pages)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.before_request(lambda: setattr(g, "started", time.perf_counter()))
    app.after_request(_count)
    capture = Capture.start_up(  # None when CAPTURE_DATABASE_URL is unset
        settings.capture_database_url, "predict", settings.capture_features, app.logger,
        "CAPTURE_DATABASE_URL",
    )  # fmt: skip
    app.wsgi_app = Service(app.wsgi_app, live, settings, watch, app.logger, capture)  # type: ignore[method-assign]
    return app


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _count(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    count_request(route, request.method, response.status_code, time.perf_counter() - g.started)
    return response


def _http_error(error: HTTPException) -> Response:
    name = (error.name or "error").lower().replace(" ", "_")
    response = json_response(error_payload(name, error.description or name), error.code or 500)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _unexpected_error(error: Exception) -> Response:
    current_app.logger.exception("unhandled error")
    return json_response(INTERNAL_ERROR, 500)


def _settings() -> Settings:
    return current_app.extensions["churn.settings"]


def _predictor() -> Predictor:
    return current_app.extensions["churn.predictor"]


@api.get("/health")
def health() -> Response:
    return json_response({"status": "ok", "model_version": _predictor().version})


@api.get("/model")
def model_info() -> Response:
    """The live model (at the top level) and the shadow, if one is loaded."""
    shadow = current_app.extensions["churn.shadow"]
    live = {**_predictor().describe(), "role": "live"}
    return json_response({**live, "shadow": shadow.describe() if shadow else None})


@api.get("/drift")
def drift() -> Response:
    model = _predictor()
    if model.drift_bins is None:
        message = "the live model was trained without drift bins; retrain with `python train.py`"
        return json_response(error_payload("no_drift_reference", message), 404)
    current_app.extensions["churn.watch"].flush()  # this worker's last second; others lag ≤ 1 s
    return json_response(
        {"model_version": model.version, **live_drift(model.drift_bins, _settings().metrics_dir)}
    )


@api.get("/openapi.json")
def openapi() -> Response:
    return json_response(api_spec())


@api.get("/metrics")
def metrics() -> Response:
    current_app.extensions["churn.watch"].flush()
    return Response(exposition(_settings().metrics_dir), content_type=CONTENT_TYPE_LATEST)


@functools.cache
def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _body_headers(status: int, body: bytes) -> list[tuple[str, str]]:
    if status == 204:  # no body, so neither a type nor a length (RFC 9110)
        return []
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "request_entity_too_large", f"request body is larger than {limit} bytes")


def _read(stream: Any, size: int) -> bytes:
    try:
        return stream.read(size)
    except Exception as error:  # a malformed chunk, a connection dropped or stalled mid-body
        message = f"the request body could not be read ({type(error).__name__})"
        raise ApiError(400, "bad_request", message) from None


def _explain_flag(query: str) -> bool:
    if not query:
        return False
    pairs = parse_qsl(query, keep_blank_values=True)
    raw = next((value for name, value in pairs if name == "explain"), "false").strip().lower()
    if raw not in TRUE_WORDS | FALSE_WORDS:
        raise ApiError(400, "invalid_parameter", "explain must be true or false")
    return raw in TRUE_WORDS
