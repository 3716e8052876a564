"""The rules for a customer's fields, written once, as pydantic types built from the model's schema.

How values may be spelled (README, "The request"):
- a number is a JSON number or text holding a decimal number (``24``, ``"24"``, ``" 29.85 "``,
  ``"24.0"``, ``"1e3"``); never true/false, NaN or infinity. Whole-number fields (``tenure``)
  take ``24.0`` and ``"24.0"`` but not ``24.5``. Blank text is a missing value, except for
  ``totalcharges``, where it means 0: the raw Telco CSV leaves it blank for customers with no
  bill yet, and training reads it as 0;
- a flag (``seniorcitizen``) is anything a number may be whose value is 0 or 1, the words
  yes/no and true/false in any case, or JSON true/false;
- a category is text, compared without case or surrounding spaces and with spaces as
  underscores (``"Fiber optic"`` is ``fiber_optic``), and must be a value the model was
  trained on;
- the customer id is text of at most 64 characters or a whole number, echoed back as text;
  ``customerID`` (the CSV's) wins over ``customer_id`` when both are given. Field names are
  matched the same way as categories (``MonthlyCharges`` is ``monthlycharges``).

``FieldRules`` gives each field's check for one value; churn/columns.py applies them to columns
and is the only caller. The ``Customer`` model built from the same types is the OpenAPI schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from churn.features import BLANK_MEANS_ZERO, ID_FIELD, normalize_token

MAX_TEXT_LENGTH = 100
MAX_ID_LENGTH = 64
ID_KEYS = (ID_FIELD, "customer_id")  # in order of precedence
DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
FLAG_WORDS = {"no": 0, "yes": 1, "false": 0, "true": 1}
ID_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "maxLength": MAX_ID_LENGTH},
            {"type": "integer"},
            {"type": "null"},
        ],
        "description": "echoed back as customer_id",
    }
)


class RefusedValueError(ValueError):
    """One value breaks its field's rule: ``kind`` is pydantic's error type, for the metrics."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.message, self.kind = message, kind


def _text(value: str) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"must be at most {MAX_TEXT_LENGTH} characters")
    return value.strip()


def _number(value: Any, blank: Any = None) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str):
        text = _text(value)
        if not text and blank is not None:
            return blank
        if not text:
            raise PydanticCustomError("missing", "is blank; a number is required")
        if not DECIMAL.fullmatch(text):
            raise ValueError("must be a number")
        value = float(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _whole(value: Any) -> Any:
    value = _number(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and _text(value).lower() in FLAG_WORDS:
        return FLAG_WORDS[_text(value).lower()]
    return _whole(value)


def _category(value: Any) -> Any:
    return normalize_token(_text(value)) if isinstance(value, str) else value


def _customer_id(value: Any) -> Any:
    # Checked here, not by pydantic's union: that would turn true/false into 1/0.
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON has one number type: 7.0 is the integer 7
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
        raise ValueError("must be a string or an integer")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_ID_LENGTH} characters")
    return value


def field_types(schema: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each field's pydantic (type, default) from the ``schema`` section of the model metadata."""
    types: dict[str, tuple[Any, Any]] = {}
    for field, values in schema["categorical"].items():
        allowed = Literal[tuple(values)]  # type: ignore[valid-type]
        types[field] = (Annotated[allowed, BeforeValidator(_category)], Field())
    for field in schema["flags"]:
        types[field] = (Annotated[int, BeforeValidator(_flag)], Field(ge=0, le=1))
    for field, limits in schema["numeric"].items():
        blank = 0.0 if field in BLANK_MEANS_ZERO else None
        parse: Callable[[Any], Any] = _whole if limits["integer"] else partial(_number, blank=blank)
        kind = int if limits["integer"] else float
        bounds = Field(ge=limits["min"], le=limits["max"])  # on the field: in the JSON schema too
        types[field] = (Annotated[kind, BeforeValidator(parse)], bounds)
    for key in ID_KEYS:
        types[key] = (
            Annotated[str | int | None, BeforeValidator(_customer_id), ID_SCHEMA],
            Field(None),
        )
    return types


def customer_model(schema: Mapping[str, Any]) -> type[BaseModel]:
    """The customer as one pydantic model: the OpenAPI ``Customer`` schema."""
    config = ConfigDict(extra="ignore", frozen=True)
    return create_model("Customer", __config__=config, **field_types(schema))  # type: ignore[call-overload]


class FieldRules(dict[str, Callable[[Any], Any]]):
    """Each field's check of one value: ``rules[field](value)`` gives the value as the model
    uses it, or raises ``RefusedValueError`` with pydantic's message. ``bounds`` and ``whole``
    restate the number rules for checking a column of numbers as one array."""

    def __init__(self, schema: Mapping[str, Any]):
        super().__init__(
            (field, _check(TypeAdapter(Annotated[kind, info])))
            for field, (kind, info) in field_types(schema).items()
        )
        limits = schema["numeric"]
        self.bounds = {f: (float(s["min"]), float(s["max"])) for f, s in limits.items()}
        self.bounds.update({field: (0.0, 1.0) for field in schema["flags"]})
        self.whole = {f for f, s in limits.items() if s["integer"]} | set(schema["flags"])


def _check(adapter: TypeAdapter) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return adapter.validate_python(value)
        except ValidationError as error:
            first = error.errors(include_url=False, include_input=False)[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            raise RefusedValueError(message, first["type"]) from None

    return check
