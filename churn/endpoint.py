"""``/predict`` as a plain WSGI app: the one route that carries the load.

Flask's per-request machinery (request context, URL routing, Request and Response objects) cost
more than parsing, validating and scoring a customer together, so this route is answered from the
WSGI environ directly and Flask serves every other route (docs/performance.md). Both answer with
the same JSON errors (errors.py), the same API key check (auth.py), the same metrics and, through
the middleware in app.py, the same response headers.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from churn.auth import require_api_key
from churn.capture import Capture
from churn.config import Settings
from churn.errors import INTERNAL_ERROR, ApiError
from churn.fastpath import Scored, SingleCustomerPath
from churn.monitor import DriftMonitor, count_rejections
from churn.observability import (
    MODEL_VERSION_KEY,
    REQUEST_ID_KEY,
    SERVER_TIMING_KEY,
    Prediction,
    count_request,
    record_predictions,
)
from churn.predictor import Predictor
from churn.schema import RequestValidationError
from churn.shadow import Shadow
from churn.watch import BatchWatch

PATH = "/predict"
MODEL_VERSION_HEADER = "X-Model-Version"
ALLOWED_METHODS = "OPTIONS, POST"
TRUE_WORDS = frozenset({"true", "1", "yes"})
BOOLEAN_WORDS = TRUE_WORDS | frozenset({"false", "0", "no", ""})


@functools.cache
def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


@dataclass(frozen=True)
class PredictEndpoint:
    """The WSGI app for ``/predict``: POST customers, get churn decisions (README, API)."""

    predictor: Predictor
    settings: Settings
    logger: logging.Logger
    drift: DriftMonitor | None = None  # None: the model was trained without drift bins
    shadow: Shadow | None = None
    capture: Capture | None = None  # churn/capture.py: answered customers to PostgreSQL
    one: SingleCustomerPath = field(init=False)  # one customer: checked, scored, binned at once
    watch_batch: BatchWatch = field(init=False)  # a fast-path batch's drift and shadow

    def __post_init__(self) -> None:
        one = SingleCustomerPath(self.predictor.rules, self.predictor.scorer, self.drift)
        watch = BatchWatch(self.drift, self.shadow, self.predictor.threshold)
        object.__setattr__(self, "one", one)  # frozen: set once, here
        object.__setattr__(self, "watch_batch", watch)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        extra_headers: list[tuple[str, str]] = []
        prediction = None
        try:
            status, body, prediction = self._answer(environ, method)
        except ApiError as error:
            status, body = error.status, orjson.dumps(error.payload())
            extra_headers = error.headers
        except Exception:
            # Never a stack trace in a response; the traceback goes to the error log.
            self.logger.exception(
                "unhandled error", extra={"request_id": environ.get(REQUEST_ID_KEY)}
            )
            status, body = 500, orjson.dumps(INTERNAL_ERROR)
        if status == 200:
            # Time spent in the app (parse, validate, score), for clients and the benchmarks.
            environ[SERVER_TIMING_KEY] = (time.perf_counter() - started) * 1000
        count_request(PATH, method, status, started, prediction)
        predictor = self.predictor
        environ[MODEL_VERSION_KEY] = predictor.version  # for the access log line
        headers = _headers(status, body)
        headers += extra_headers
        headers.append((MODEL_VERSION_HEADER, predictor.version_header))
        start_response(_status_line(status), headers)
        return [body]

    def _answer(self, environ: dict, method: str) -> tuple[int, bytes, Prediction | None]:
        """Status, body and, for one customer answered, what the metrics count about it."""
        if method != "POST":
            if method == "OPTIONS":
                return 204, b"", None
            raise ApiError(
                405, "method_not_allowed", f"{PATH} accepts POST (and OPTIONS), not {method}"
            )
        require_api_key(environ, self.settings.api_key)
        payload = self._read_json(environ)
        explain = _explain_flag(environ.get("QUERY_STRING", ""))
        batch = isinstance(payload, list)
        prediction = None
        if type(payload) is dict and (scored := self.one.score(payload)) is not None:
            results = [self._answer_one(scored, explain)]
            prediction = Prediction(results[0], scored.bins)
        else:
            results = self._answer_many(payload, batch, explain)
        if self.capture is not None:  # queued only: written off the request path
            live = self.predictor
            self.capture.submit(
                environ[REQUEST_ID_KEY], live.version, live.threshold, results, payload
            )
        return 200, orjson.dumps(results if batch else results[0]), prediction

    def _answer_many(self, payload: Any, batch: bool, explain: bool) -> list[dict[str, Any]]:
        """The results of a batch, or of one customer the single-customer path left over."""
        if batch:
            self._check_batch_size(payload)
        results = self._fast_answer(payload, batch, explain)
        if results is None:  # explanations of a batch, or customers the fast checks refused
            results = self._validated_answer(payload, batch, explain)
        record_predictions(results)
        return results

    def _answer_one(self, scored: Scored, explain: bool) -> dict[str, Any]:
        """The result for one customer the single-customer path checked and scored."""
        explained = scored.customer if explain else None
        result = self.predictor.result(scored.probability, scored.customer_id, explained)
        if self.shadow is not None:
            self.shadow.compare_one(scored, result)
        return result

    def _fast_answer(self, payload: Any, batch: bool, explain: bool) -> list[dict] | None:
        """A batch's results from the precomputed checks (churn/fastbatch.py), or None."""
        if batch and not explain:
            return self.predictor.fast_batch.answer(payload, self.watch_batch)
        return None

    def _validated_answer(self, payload: Any, batch: bool, explain: bool) -> list[dict[str, Any]]:
        validator = self.predictor.validator
        try:
            customers = validator.many(payload) if batch else [validator.one(payload)]
        except RequestValidationError as error:
            count_rejections(error.problems, error.kinds)
            raise ApiError(
                422, "validation_error", "the request has invalid customers", error.problems
            ) from None
        results = self.predictor.predict(customers, explain)
        self._watch(customers, results)
        return results

    def _watch(self, customers: Sequence[Mapping[str, Any]], results: list[dict[str, Any]]) -> None:
        """Count validated customers for drift and compare the shadow model's decisions."""
        if self.drift is not None:
            self.drift.count(customers)
        if self.shadow is not None:
            self.shadow.compare(customers, results)

    def _read_json(self, environ: dict) -> Any:
        if not _is_json(environ.get("CONTENT_TYPE", "")):
            raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
        body = self._read_body(environ)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            message = f"request body is not valid JSON: {error}"
            raise ApiError(400, "invalid_json", message) from None

    def _read_body(self, environ: dict) -> bytes:
        limit = self.settings.max_body_bytes
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            if not (declared.isascii() and declared.isdigit()):
                raise ApiError(400, "bad_request", "Content-Length is not a number")
            length = int(declared)
            if length > limit:
                raise _too_large(limit)  # refused from the header, before the body is read
            body = _read(environ["wsgi.input"], length)
            if len(body) < length:
                raise ApiError(400, "bad_request", "request body is shorter than Content-Length")
            return body
        if not environ.get("wsgi.input_terminated"):
            return b""  # no length and no chunked framing: no body
        body = _read(environ["wsgi.input"], limit + 1)  # chunked: one byte past the limit
        if len(body) > limit:
            raise _too_large(limit)
        return body

    def _check_batch_size(self, payload: list) -> None:
        limit = self.settings.max_batch_size
        if not payload or len(payload) > limit:
            message = f"a batch must hold between 1 and {limit} customers, got {len(payload)}"
            problems = [{"field": "(batch)", "message": message}]
            raise ApiError(422, "validation_error", message, problems)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "request_entity_too_large", f"request body is larger than {limit} bytes")


def _read(stream: Any, size: int) -> bytes:
    try:
        return stream.read(size)
    except Exception as error:
        # Only the client can make reading fail: a malformed chunk, a connection dropped or
        # stalled mid-body. The server (gunicorn) closes the connection after the answer.
        message = f"the request body could not be read ({type(error).__name__})"
        raise ApiError(400, "bad_request", message) from None


def _headers(status: int, body: bytes) -> list[tuple[str, str]]:
    if status == 204:  # OPTIONS: no body, so neither a type nor a length (RFC 9110)
        return [("Allow", ALLOWED_METHODS)]
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if status == 405:
        headers.append(("Allow", ALLOWED_METHODS))
    return headers


def _is_json(content_type: str) -> bool:
    # The exact common value first: splitting off the header's options costs more than the check.
    if content_type == "application/json":
        return True
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or mimetype.endswith("+json")


def _explain_flag(query: str) -> bool:
    if not query:
        return False  # the usual case: no need to parse the query string
    pairs = parse_qsl(query, keep_blank_values=True)
    raw = next((value for name, value in pairs if name == "explain"), "false").strip().lower()
    if raw not in BOOLEAN_WORDS:
        raise ApiError(400, "invalid_parameter", "explain must be true or false")
    return raw in TRUE_WORDS
