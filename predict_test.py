"""Ask the churn service whether to send a customer a promo email.

This is the client a marketing service runs: copy this one file into your project, it needs only
`requests` (pip install requests). It asks about the course's customer xyz-123 unless told:

    python predict_test.py [--url URL] [--customer FILE.json] [--customer-id ID]
                           [--api-key KEY] [--retries N] [--timeout SECONDS]

/predict is a pure function of the customer, so sending a request again is safe. A request that
failed on the way (no connection, a connection dropped mid-request, a 502/503/504 from a load
balancer while an instance is replaced) is retried with exponential backoff and jitter, within
--timeout seconds in all (default 10); --retries 0 turns retrying off. A 4xx is the caller's
mistake and is never retried. With an API key, use an https:// URL: over http the key travels in
clear text.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

DEFAULT_URL = "http://localhost:9696/predict"

# The course's standard customer (ML Zoomcamp, deployment chapter). A copy, so this file runs on
# its own; tests/test_client.py checks it equals churn.features.EXAMPLE_CUSTOMER.
CUSTOMER_ID = "xyz-123"
CUSTOMER: dict[str, Any] = {
    "gender": "female",
    "seniorcitizen": 0,
    "partner": "yes",
    "dependents": "no",
    "phoneservice": "no",
    "multiplelines": "no_phone_service",
    "internetservice": "dsl",
    "onlinesecurity": "no",
    "onlinebackup": "yes",
    "deviceprotection": "no",
    "techsupport": "no",
    "streamingtv": "no",
    "streamingmovies": "no",
    "contract": "month-to-month",
    "paperlessbilling": "yes",
    "paymentmethod": "electronic_check",
    "tenure": 24,
    "monthlycharges": 29.85,
    "totalcharges": 24 * 29.85,
}

# Answers that mean "not this time": a load balancer with no healthy instance, or an instance lost
# mid-request. Any other status is the answer.
RETRY_STATUSES = frozenset({502, 503, 504})
DEFAULT_RETRIES = 6
DEFAULT_TIMEOUT = 10.0
BACKOFF_FIRST = 0.25  # seconds before the first retry, doubling after each one...
BACKOFF_CAP = 2.0  # ...up to this


class ClientError(Exception):
    """Why the client could not get a decision, in one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="predict_test.py", description="Ask the churn service about one customer."
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="the service's /predict URL (default: %(default)s)"
    )
    parser.add_argument(
        "--customer", type=Path, help="a JSON file with one customer (default: the course's)"
    )
    parser.add_argument(
        "--customer-id", default=CUSTOMER_ID, help="id used in the message (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("API_KEY"),
        help="API key if the service needs one (default: $API_KEY)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="retries after a failed connection or a 502/503/504; 0: none (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to get an answer, retries included (default: %(default)s)",
    )
    return parser.parse_args(argv)


def load_customer(path: Path | None) -> dict[str, Any]:
    if path is None:
        return dict(CUSTOMER)
    try:
        customer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ClientError(f"cannot read customer file {path}: {error}") from None
    if not isinstance(customer, dict):
        raise ClientError(f"{path} must hold one JSON object")
    return customer


def backoff(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): exponential, with jitter.

    Half the step is fixed and half random, so no retry comes at once and many clients that
    failed together do not come back together.
    """
    step = min(BACKOFF_CAP, BACKOFF_FIRST * 2**retry)
    return step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter, not a secret


def post_with_retries(
    url: str, customer: dict[str, Any], headers: dict[str, str], retries: int, timeout: float
) -> requests.Response:
    """POST ``customer``; retry what failed on the way, all within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            response = requests.post(url, json=customer, headers=headers, timeout=remaining)
            failure = f"HTTP {response.status_code}"
            if response.status_code not in RETRY_STATUSES:
                return response
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            response, failure = None, type(error).__name__
        except requests.Timeout:
            raise ClientError(f"{url} did not answer within {timeout:g} s") from None
        except requests.RequestException as error:
            raise ClientError(f"cannot reach {url}: {type(error).__name__}") from None
        pause = backoff(attempt - 1)
        if attempt > retries or time.monotonic() + pause >= deadline:
            if response is not None:
                return response  # the last 502/503/504, reported as the answer
            raise ClientError(f"cannot reach {url}: {failure} ({attempt} attempts)")
        time.sleep(pause)


def warn_if_key_travels_in_clear(url: str, api_key: str | None) -> None:
    parts = urlsplit(url)
    if not api_key or parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return
    print(
        f"warning: the API key goes to {parts.hostname} unencrypted; use https://", file=sys.stderr
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def ask(
    url: str, customer: dict[str, Any], api_key: str | None, retries: int, timeout: float
) -> dict[str, Any]:
    """The service's answer for ``customer``, or a ClientError saying why there is none."""
    warn_if_key_travels_in_clear(url, api_key)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = post_with_retries(url, customer, headers, retries, timeout)
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        detail = body.get("message", "") if isinstance(body, dict) else response.text[:200]
        raise ClientError(f"{url} answered HTTP {response.status_code}: {detail}")
    return body


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        customer = load_customer(args.customer)
        result = ask(args.url, customer, args.api_key, max(args.retries, 0), args.timeout)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    if result["churn"]:
        print(f"sending promo email to {args.customer_id}")
    else:
        print(f"not sending promo email to {args.customer_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
