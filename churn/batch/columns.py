"""Scoring one Arrow record batch: validate column by column, score, and explain every refusal.

``score_record_batch`` is the batch function both engines run (the local CLI and Spark's
``mapInArrow``). Each string column is dictionary-encoded, so a field's validator (churn/rules.py,
i.e. the pydantic model's own) runs once per *distinct* value; numbers are parsed and
bounds-checked as arrays. Rows these checks cannot vouch for go to the pydantic validator one by
one: it accepts them or writes the same problems /predict answers with a 422.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.batch.model import BatchModel
from churn.features import FEATURE_FIELDS, normalize_token
from churn.predictor import Predictor
from churn.rules import INVALID, Bounds, ValueRule
from churn.schema import ID_KEYS, RequestValidationError

PROBABILITY, DECISION, ROW = "churn_probability", "churn", "row"
DEFAULT_ID_COLUMN = "customer_id"  # the rejects' id column when the input has none
# Text a number column may hold that parses the same in Arrow and in Python's float():
# everything else (blanks, signs, exponents, other digits) goes to the field's validator.
PLAIN_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"


class InputFileError(Exception):
    """The input file cannot be scored at all (missing or duplicated columns, unreadable)."""


@dataclass(frozen=True)
class Layout:
    """Where each field is in a batch: column index by course-spelling field name."""

    index: Mapping[str, int]
    names: tuple[str, ...]
    id_column: str | None  # the input's own name for the customer id, if it has one

    @classmethod
    def of(cls, schema: pa.Schema) -> Layout:
        """Match columns to fields in any spelling; unknown columns are ignored."""
        wanted = (*FEATURE_FIELDS, *ID_KEYS)
        index: dict[str, int] = {}
        for position, name in enumerate(schema.names):
            field = normalize_token(name)
            if field in wanted:
                if field in index:
                    raise InputFileError(
                        f"columns {schema.names[index[field]]!r} and {name!r} are both {field}"
                    )
                index[field] = position
        missing = [field for field in FEATURE_FIELDS if field not in index]
        if missing:
            raise InputFileError(f"missing column(s): {', '.join(missing)}")
        ids = [schema.names[index[key]] for key in ID_KEYS if key in index]
        return cls(index, tuple(schema.names), ids[0] if ids else None)

    def output_schema(self) -> pa.Schema:
        key = pa.field(self.id_column, pa.string()) if self.id_column else pa.field(ROW, pa.int64())
        return pa.schema([key, pa.field(PROBABILITY, pa.float64()), pa.field(DECISION, pa.bool_())])

    def rejects_schema(self) -> pa.Schema:
        return rejects_schema(self.id_column)


def rejects_schema(id_column: str | None) -> pa.Schema:
    """One line per problem: the 1-based data row, the customer id, the field, the message."""
    return pa.schema(
        [
            pa.field(ROW, pa.int64()),
            pa.field(id_column or DEFAULT_ID_COLUMN, pa.string()),
            pa.field("field", pa.string()),
            pa.field("message", pa.string()),
        ]
    )


def score_record_batch(
    batch: pa.RecordBatch, model: BatchModel, first_row: int
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """(scored, rejects) for ``batch``, whose first row is data row ``first_row`` (1-based).

    Every row ends up in exactly one of the two: scored rows in input order, rejected rows as
    one line per problem. Both have declared schemas (``Layout.output_schema``/``rejects_schema``)
    whatever the input's types. Raises ``InputFileError`` when columns are missing.
    """
    layout = Layout.of(batch.schema)
    predictor = model.predictor
    scorer, rules = predictor.scorer, predictor.rules
    suspect = np.zeros(batch.num_rows, dtype=bool)
    numbers = np.empty((batch.num_rows, len(scorer.numeric_fields)))
    for j, field in enumerate(scorer.numeric_fields):
        column = batch.column(layout.index[field])
        if field in rules.flags:
            numbers[:, j], bad = _coded(column, rules.flags[field], None)
        else:
            numbers[:, j], bad = _numeric(column, rules.numeric[field], rules.bounds[field])
        suspect |= bad
    categories = []
    for field, weights in scorer.category_weights.items():
        terms, bad = _coded(batch.column(layout.index[field]), rules.categorical[field], weights)
        categories.append(terms)
        suspect |= bad
    ids, bad = _ids(batch, layout, rules.max_id_length)
    suspect |= bad
    rows = np.flatnonzero(suspect)
    refused, problems, ids = _decide_one_by_one(
        batch, layout, predictor, rows, numbers, categories, ids
    )
    probabilities = scorer.combine(numbers, categories)
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[refused] = False
    scored = _scored(layout, ids, probabilities, keep, first_row, model.threshold)
    return scored, _rejects(layout, problems, first_row)


def _scored(
    layout: Layout,
    ids: pa.Array,
    probabilities: np.ndarray,
    keep: np.ndarray,
    first_row: int,
    threshold: float,
) -> pa.RecordBatch:
    mask = pa.array(keep)
    if layout.id_column:
        key = ids.filter(mask)
    else:
        key = pa.array(np.flatnonzero(keep) + first_row, pa.int64())
    kept = probabilities[keep]
    columns = [key, pa.array(kept, pa.float64()), pa.array(kept >= threshold)]
    return pa.RecordBatch.from_arrays(columns, schema=layout.output_schema())


def _rejects(
    layout: Layout, problems: list[tuple[int, Any, str, str]], first_row: int
) -> pa.RecordBatch:
    rows, ids, fields, messages = zip(*problems, strict=True) if problems else ([], [], [], [])
    columns = [
        pa.array(np.array(rows, dtype=np.int64) + first_row, pa.int64()),
        pa.array(ids, pa.string()),
        pa.array(fields, pa.string()),
        pa.array(messages, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=layout.rejects_schema())


def _numeric(column: pa.Array, rule: ValueRule, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64, and which rows the array checks could not vouch for."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)  # nulls: NaN
        return values, ~bounds.accepts(values)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return np.zeros(len(column)), np.ones(len(column), dtype=bool)  # the validator decides
    plain = pc.fill_null(pc.match_substring_regex(column, PLAIN_DECIMAL), False)
    text = pc.if_else(plain, column, pa.scalar("0", column.type))
    values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False, writable=True)
    suspect = ~bounds.accepts(values)
    others = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    if others.size:  # blanks, signs, exponents: the field's validator, once per distinct text
        values[others], suspect[others] = _coded(column.take(others), rule, None)
    return values, suspect


def _coded(
    column: pa.Array, rule: ValueRule, weights: Mapping[str, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the field's weight (``weights`` given) or its validated value, and suspicion.

    The validator runs once per distinct value of the column, not once per row.
    """
    try:
        encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    except pa.ArrowNotImplementedError:  # nested values: only the validator can say
        return np.zeros(len(column)), np.ones(len(column), dtype=bool)
    checked = list(map(rule, encoded.dictionary.to_pylist()))
    invalid = np.array([value is INVALID for value in checked] + [True])  # last: null
    if weights is None:
        known = [0.0 if value is INVALID else float(value) for value in checked]
    else:
        known = [0.0 if value is INVALID else weights.get(value, 0.0) for value in checked]
    codes = pc.fill_null(encoded.indices, len(checked)).to_numpy(zero_copy_only=False)
    return np.array([*known, 0.0])[codes], invalid[codes]


def _ids(batch: pa.RecordBatch, layout: Layout, max_length: int) -> tuple[pa.Array, np.ndarray]:
    """The id each row echoes (as text; ``customerid`` wins over ``customer_id``) and suspicion."""
    columns = [batch.column(layout.index[key]) for key in ID_KEYS if key in layout.index]
    suspect = np.zeros(batch.num_rows, dtype=bool)
    texts = []
    for column in columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.dictionary_decode(), kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            too_long = pc.greater(pc.utf8_length(column), max_length)
            suspect |= pc.fill_null(too_long, False).to_numpy(zero_copy_only=False)
        elif not (pa.types.is_integer(kind) or pa.types.is_null(kind)):
            suspect[:] = True  # floats, booleans, ...: the validator decides row by row
            column = pa.nulls(len(column), pa.string())
        texts.append(pc.cast(column, pa.string()))
    if not texts:
        return pa.nulls(batch.num_rows, pa.string()), suspect
    return (pc.coalesce(*texts) if len(texts) > 1 else texts[0]), suspect


def _decide_one_by_one(
    batch: pa.RecordBatch,
    layout: Layout,
    predictor: Predictor,
    rows: np.ndarray,
    numbers: np.ndarray,
    categories: list[np.ndarray],
    ids: pa.Array,
) -> tuple[list[int], list[tuple[int, Any, str, str]], pa.Array]:
    """The pydantic validator on the suspect rows: fills in those it accepts, explains the rest.

    Returns the refused rows, their problems, and the ids with the validator's text filled in.
    """
    if not rows.size:
        return [], [], ids
    scorer, refused, problems = predictor.scorer, [], []
    records = batch.select(list(layout.index.values())).take(pa.array(rows)).to_pylist()
    id_texts = ids.to_pylist()
    for row, record in zip(rows.tolist(), records, strict=True):
        try:
            clean = predictor.validator.one(record)
        except RequestValidationError as error:
            refused.append(row)
            raw_id = next((record[n] for n in _id_names(layout) if record[n] is not None), None)
            shown = None if raw_id is None else str(raw_id)
            problems += [(row, shown, p["field"], p["message"]) for p in error.problems]
            continue
        numbers[row] = [clean[field] for field in scorer.numeric_fields]
        for terms, (field, weights) in zip(
            categories, scorer.category_weights.items(), strict=True
        ):
            terms[row] = weights.get(clean[field], 0.0)
        id_texts[row] = clean["customer_id"]
    if len(refused) < rows.size:  # some ids were decided by the validator: use its text
        ids = pa.array(id_texts, pa.string())
    return refused, problems, ids


def _id_names(layout: Layout) -> list[str]:
    return [layout.names[layout.index[key]] for key in ID_KEYS if key in layout.index]
