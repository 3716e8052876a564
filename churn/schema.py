"""Request validation: a pydantic model built from the feature schema saved with the model.

The vocabulary comes from the model's metadata, so a retrained model with new categories is
validated against what it actually knows. Customers may be written in the course's spelling
("fiber_optic") or the raw CSV's ("Fiber optic"): keys and text values are normalized first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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
    model_validator,
)

from churn.features import ID_FIELD, normalize_token

MAX_TEXT_LENGTH = 100
MAX_ID_LENGTH = 64
ID_KEYS = (ID_FIELD, "customer_id")
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
_FLAG_WORDS = {"0": 0, "1": 1, "no": 0, "yes": 1, "false": 0, "true": 1}


class RequestValidationError(Exception):
    """A request's customers break the schema; ``problems`` lists every problem found."""

    def __init__(self, problems: list[dict[str, Any]], kinds: list[str] | None = None):
        super().__init__(f"{len(problems)} problem(s) in the request")
        self.problems = problems
        # pydantic's error type for each problem ("literal_error": a value never seen in
        # training), for the rejection metrics; not part of the response.
        self.kinds = kinds or ["invalid"] * len(problems)


def _bounded_text(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"must be at most {MAX_TEXT_LENGTH} characters")
    return value


def _category_normalizer(allowed: frozenset[str]):
    """Values already in the course's spelling pass straight through; others are normalized."""

    def normalize(value: Any) -> Any:
        if isinstance(value, str) and value in allowed:  # lists and dicts are unhashable
            return value
        value = _bounded_text(value)
        return normalize_token(value) if isinstance(value, str) else value

    return normalize


def _number(value: Any) -> Any:
    """Accept JSON numbers and numeric strings; refuse booleans and non-finite values."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str):
        try:
            value = float(_bounded_text(value).strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _whole_number(value: Any) -> Any:
    value = _number(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _charges(value: Any) -> Any:
    # The data has blank TotalCharges for brand-new customers; training reads them as 0.
    if isinstance(value, str) and not value.strip():
        return 0.0
    return _number(value)


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        word = normalize_token(_bounded_text(value))
        if word not in _FLAG_WORDS:
            raise ValueError("must be 0 or 1 (or yes/no)")
        return _FLAG_WORDS[word]
    return int(value) if isinstance(value, bool) else value


def _customer_id(value: Any) -> Any:
    # Checked here, not by pydantic's union: that would turn true/false into 1/0.
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON has one number type: 7.0 is the integer 7
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
        raise ValueError("must be a string or an integer")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_ID_LENGTH} characters")
    return value


def _numeric_field(limits: Mapping[str, Any]) -> tuple[Any, Any]:
    """A (type, FieldInfo) pair; bounds on the FieldInfo so they reach the JSON schema too."""
    kind = int if limits["integer"] else float
    before = BeforeValidator(_whole_number if limits["integer"] else _charges)
    return Annotated[kind, before], Field(ge=limits["min"], le=limits["max"])


class _CustomerBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _normalize_keys(cls, data: Any) -> Any:
        return normalize_keys(data, cls.model_fields) if isinstance(data, dict) else data


def normalize_keys(data: dict[Any, Any], known: Mapping[str, Any]) -> dict[Any, Any]:
    """Keys in the course's spelling; a later key wins when two spellings meet."""
    return rename_keys(data, key_renames(data, known))


def key_renames(keys: Iterable[Any], known: Mapping[str, Any]) -> dict[str, str]:
    """The course's spelling of each text key that is not already a field name."""
    return {k: normalize_token(k) for k in keys if isinstance(k, str) and k not in known}


def rename_keys(data: dict[Any, Any], renames: Mapping[str, str]) -> dict[Any, Any]:
    return {renames.get(k, k): v for k, v in data.items()}


def build_customer_model(schema: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model for one customer, from the ``schema`` section of the model metadata."""
    fields: dict[str, Any] = {}
    for field, values in schema["categorical"].items():
        allowed = Literal[tuple(values)]  # type: ignore[valid-type]
        normalize = _category_normalizer(frozenset(values))
        fields[field] = (Annotated[allowed, BeforeValidator(normalize)], ...)
    for field in schema["flags"]:
        fields[field] = (Annotated[int, BeforeValidator(_flag)], Field(ge=0, le=1))
    for field, limits in schema["numeric"].items():
        fields[field] = _numeric_field(limits)
    for key in ID_KEYS:
        fields[key] = (Annotated[str | int | None, BeforeValidator(_customer_id), ID_SCHEMA], None)
    return create_model("Customer", __base__=_CustomerBase, **fields)


class CustomerValidator:
    """Turns request JSON into clean feature dicts, or raises ``RequestValidationError``."""

    def __init__(self, schema: Mapping[str, Any]):
        self.schema = schema
        self.model = build_customer_model(schema)
        self._batch = TypeAdapter(list[self.model])  # type: ignore[name-defined]

    def field_adapter(self, field: str) -> TypeAdapter:
        """A validator for one field's value alone, with exactly the model's rules for it."""
        info = self.model.model_fields[field]
        return TypeAdapter(Annotated[(info.annotation, *info.metadata)])  # type: ignore[arg-type]

    def one(self, payload: Any) -> dict[str, Any]:
        try:
            return _as_dict(self.model.model_validate(payload))
        except ValidationError as error:
            raise RequestValidationError(_problems(error, batch=False), _kinds(error)) from None

    def many(self, payload: list[Any]) -> list[dict[str, Any]]:
        try:
            return [_as_dict(item) for item in self._batch.validate_python(payload)]
        except ValidationError as error:
            raise RequestValidationError(_problems(error, batch=True), _kinds(error)) from None


def _as_dict(customer: BaseModel) -> dict[str, Any]:
    values = customer.model_dump()
    ids = [values.pop(key) for key in ID_KEYS]  # customerID (CSV spelling) wins over customer_id
    customer_id = next((value for value in ids if value is not None), None)
    values["customer_id"] = None if customer_id is None else str(customer_id)
    return values


def _kinds(error: ValidationError) -> list[str]:
    return [item["type"] for item in error.errors(include_url=False, include_input=False)]


def _problems(error: ValidationError, batch: bool) -> list[dict[str, Any]]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        location = list(item["loc"])
        problem: dict[str, Any] = {}
        if batch and location and isinstance(location[0], int):
            problem["index"] = location.pop(0)
        names = [str(part) for part in location if not str(part).startswith("function-")]
        problem["field"] = ".".join(names) or "(customer)"
        problem["message"] = _message(item)
        problems.append(problem)
    return problems


def _message(item: Mapping[str, Any]) -> str:
    if item["type"] in {"model_type", "model_attributes_type", "dict_type"}:
        return "a customer must be a JSON object"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")
