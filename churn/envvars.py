"""How an environment variable's text becomes a typed setting: parsers with bounds, the
``setting`` field that records a variable's name, default and description, and ``read``.

churn/config.py defines the settings with these and is the one module that reads os.environ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import field, fields
from pathlib import Path
from typing import Any, TypeVar


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


# --- Parsers: text from the environment to a value, or ValueError saying what is wrong ---

Parser = Callable[[str], Any]


def whole(low: int, high: int) -> Parser:
    """A whole number in [low, high]: "2.5" is refused, not truncated to 2."""

    def parse(raw: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", raw):
            raise ValueError("is not a whole number")
        return _within(int(raw), low, high)

    return parse


def number(low: float, high: float) -> Parser:
    """A finite number in [low, high]."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("is not a number") from None
        if not math.isfinite(value):
            raise ValueError("is not a finite number")
        return _within(value, low, high)

    return parse


def one_of(*choices: str) -> Parser:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return raw.lower()

    return parse


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def boolean(raw: str) -> bool:
    if raw.lower() not in _TRUE | _FALSE:
        raise ValueError("must be 1 or 0 (or true/false)")
    return raw.lower() in _TRUE


def text(raw: str) -> str:
    return raw


def path(raw: str) -> Path:
    return Path(raw)


T = TypeVar("T", int, float)


def _within(value: T, low: T, high: T) -> T:
    if not low <= value <= high:
        raise ValueError(f"must be between {low:g} and {high:g}")
    return value


# --- Fields and reading them ---

_DEFAULT = object()  # "a blank value means the default", as opposed to a value of its own


def setting(
    env: str,
    default: Any,
    parse: Parser,
    doc: str,
    *,
    shown: str | None = None,
    default_factory: Callable[[], Any] | None = None,
    blank: Any = _DEFAULT,
) -> Any:
    """A settings field read from ``env``; ``shown`` is the README's default when not literal.

    A variable set to blank text means its default, unless ``blank`` gives it a meaning.
    """
    metadata = {
        "env": env,
        "parse": parse,
        "doc": doc,
        "shown": shown if shown is not None else _shown(default),
        "blank": blank,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _shown(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{int(default)}`"
    return f"`{default}`"


def read(cls: Any, env: Mapping[str, str]) -> Iterator[tuple[str, Any]]:
    """(field name, value) for each of ``cls``'s variables set in ``env``; ConfigError if bad."""
    for item in fields(cls):
        name = item.metadata["env"]
        raw = env.get(name)
        if raw is None:
            continue
        raw = raw.strip()
        if not raw:
            if item.metadata["blank"] is not _DEFAULT:
                yield item.name, item.metadata["blank"]
            continue
        try:
            yield item.name, item.metadata["parse"](raw)
        except ValueError as error:
            raise ConfigError(f"{name}={raw!r} {error}") from None
