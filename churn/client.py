"""``python predict_test.py``: what a marketing service runs to decide on a promo email."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

from churn.features import EXAMPLE_CUSTOMER, EXAMPLE_CUSTOMER_ID

DEFAULT_URL = "http://localhost:9696/predict"


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
        "--customer-id",
        default=EXAMPLE_CUSTOMER_ID,
        help="id used in the message (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("API_KEY"),
        help="API key if the service needs one (default: $API_KEY)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait (default: %(default)s)"
    )
    return parser.parse_args(argv)


def load_customer(path: Path | None) -> dict[str, Any]:
    if path is None:
        return dict(EXAMPLE_CUSTOMER)
    try:
        customer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ClientError(f"cannot read customer file {path}: {error}") from None
    if not isinstance(customer, dict):
        raise ClientError(f"{path} must hold one JSON object")
    return customer


def ask(url: str, customer: dict[str, Any], api_key: str | None, timeout: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = requests.post(url, json=customer, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        raise ClientError(f"cannot reach {url}: {type(error).__name__}") from None
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
        result = ask(args.url, customer, args.api_key, args.timeout)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    if result["churn"]:
        print(f"sending promo email to {args.customer_id}")
    else:
        print(f"not sending promo email to {args.customer_id}")
    return 0
