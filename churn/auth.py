"""The optional API key (``API_KEY``): checked on /predict, /model and /metrics."""

from __future__ import annotations

import hmac

from churn.errors import ApiError

# A 401 names the scheme the client should use (RFC 9110 section 11.6.1; RFC 6750 for Bearer).
CHALLENGE = ("WWW-Authenticate", 'Bearer realm="churn-serving"')


def require_api_key(environ: dict, expected: str | None) -> None:
    """Raise a 401 ``ApiError`` unless the request carries ``expected`` (no key set: no check).

    The key travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
    """
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
            headers=[CHALLENGE],
        )
