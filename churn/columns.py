"""The one validator: customers as columns in, the feature matrix and each row's problems out.

A column is a list of JSON values (a /predict body, a JSON-lines file) or an Arrow array (a CSV
or Parquet file). Every value is judged by its field's rule in churn/schema.py. A column holds
few distinct values (a handful of spellings per category), so each distinct value is checked
once and the answer mapped back over the rows, and remembered for the next call. Columns that
are already numbers (JSON numbers, Parquet doubles) are checked as arrays against the same
bounds; the rule writes the message for any value the arrays refuse, so it stays the only
judge. /predict (one customer or many), ``score.py`` and the Spark engine all call ``check``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from churn.features import (
    CATEGORICAL_FIELDS,
    FEATURE_FIELDS,
    NUMBER_FIELDS,
    normalize_token,
)
from churn.schema import DECIMAL, ID_KEYS, MAX_ID_LENGTH, FieldRules, RefusedValueError

if TYPE_CHECKING:  # Arrow columns come from files only: the service runs without pyarrow
    import pyarrow as pa

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
NOT_AN_OBJECT = "a customer must be a JSON object"
MEMO_LIMIT = 4096  # answers remembered per field
Column = Any  # a list or tuple of JSON values, or a pyarrow.Array


@dataclass(frozen=True)
class Problem:
    row: int
    customer_id: str | None
    field: str
    message: str
    kind: str  # pydantic's error type ("literal_error": a category never seen in training)


@dataclass(frozen=True)
class Checked:
    """A batch as the model sees it: a row per customer, valid or not."""

    numbers: np.ndarray  # float64, a column per ``NUMBER_FIELDS``
    codes: np.ndarray  # each category's index in its vocabulary, a column per CATEGORICAL_FIELDS
    ids: list[str | None] | pa.StringArray  # a file's ids stay one Arrow array
    problems: list[Problem]  # by row, then in field order

    @functools.cached_property
    def valid(self) -> np.ndarray:
        valid = np.ones(len(self.ids), dtype=bool)
        valid[[problem.row for problem in self.problems]] = False
        return valid

    def rows(self, which: np.ndarray) -> Checked:
        """Only the rows ``which`` selects (problems are dropped: select valid rows)."""
        ids = _listed(self.ids)
        ids = [ids[i] for i in np.flatnonzero(which)]
        return Checked(self.numbers[which], self.codes[which], ids, [])

    def customer(self, row: int, vocabularies: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """One row's features by name, categories in the course's spelling."""
        values: dict[str, Any] = {
            field: vocabularies[field][code]
            for field, code in zip(CATEGORICAL_FIELDS, self.codes[row].tolist(), strict=True)
        }
        for field, number in zip(NUMBER_FIELDS, self.numbers[row].tolist(), strict=True):
            values[field] = number
        return values


class Validator:
    """Checks columns of customers against the rules of one model's schema."""

    def __init__(self, schema: Mapping[str, Any]):
        self.rules = FieldRules(schema)
        self.vocabularies = {
            field: tuple(values) for field, values in schema["categorical"].items()
        }
        code = {f: {v: i for i, v in enumerate(vs)} for f, vs in self.vocabularies.items()}
        self._distinct_checks = {
            field: Remembered(self._as_code(self.rules[field], code[field]))
            for field in CATEGORICAL_FIELDS
        }
        self._distinct_checks.update(
            {field: Remembered(self._as_float(self.rules[field])) for field in NUMBER_FIELDS}
        )
        self._checks = [(field, self._distinct_checks[field]) for field in FEATURE_FIELDS]

    def check_json(self, customers: Sequence[Any]) -> Checked:
        """JSON customers (objects with fields in any spelling) as one batch."""
        if len(customers) == 1 and type(customers[0]) is dict:
            return self._check_one(_course_keys(customers[0]))
        objects = [_course_keys(c) if type(c) is dict else None for c in customers]
        checked = self.check(json_columns(objects), len(objects))
        others = [Problem(row, None, "(customer)", NOT_AN_OBJECT, "model_type")
                  for row, o in enumerate(objects) if o is None]  # fmt: skip
        if not others:
            return checked
        # Such a row has no fields: its one problem replaces a "Field required" per field.
        bad = {problem.row for problem in others}
        kept = [problem for problem in checked.problems if problem.row not in bad]
        problems = sorted(kept + others, key=lambda problem: problem.row)
        return Checked(checked.numbers, checked.codes, checked.ids, problems)

    def check(self, columns: Mapping[str, Column], size: int) -> Checked:
        """Every feature column (and the id columns present) of ``size`` customers."""
        found: list[
            tuple[int, int, str, RefusedValueError]
        ] = []  # (row, field order, field, refusal)
        codes = np.empty((size, len(CATEGORICAL_FIELDS)), dtype=np.intp)
        numbers = np.empty((size, len(NUMBER_FIELDS)))
        for order, field in enumerate(CATEGORICAL_FIELDS):
            codes[:, order] = self._distinct(field, columns[field], size, order, found)
        for order, field in enumerate(NUMBER_FIELDS, start=len(CATEGORICAL_FIELDS)):
            numbers[:, order - len(CATEGORICAL_FIELDS)] = self._numbers(
                field, columns[field], size, order, found
            )
        ids = self._ids(columns, size, found)
        found.sort(key=itemgetter(0, 1))
        named = _listed(ids) if found else ids
        problems = [
            Problem(row, named[row], field, refusal.message, refusal.kind)
            for row, _, field, refusal in found
        ]
        return Checked(numbers, codes, ids, problems)

    def _check_one(self, customer: dict[str, Any]) -> Checked:
        """One customer, value by value: the answers ``check`` remembered for each distinct
        value, without the arrays a column costs (most requests are one customer)."""
        values = [(check, customer.get(field, MISSING)) for field, check in self._checks]
        try:  # the usual customer: every value was answered before
            answers = [check.seen[type(value), value] for check, value in values]
        except (KeyError, TypeError):  # a new value, or a list or an object: ask the rules
            answers = [check(value) for check, value in values]
        found: list[tuple[int, int, str, RefusedValueError]] = []
        for order, answer in enumerate(answers):
            if type(answer) is RefusedValueError:
                found.append((0, order, FEATURE_FIELDS[order], answer))
                answers[order] = 0
        ids = self._ids({k: [customer[k]] for k in ID_KEYS if k in customer}, 1, found)
        problems = [Problem(0, ids[0], field, refusal.message, refusal.kind)
                    for _, _, field, refusal in found]  # fmt: skip
        split = len(CATEGORICAL_FIELDS)
        codes = np.array([answers[:split]], dtype=np.intp)
        return Checked(np.array([answers[split:]], dtype=np.float64), codes, ids, problems)

    def _distinct(
        self, field: str, column: Column, size: int, order: int, found: list
    ) -> np.ndarray:
        """The column checked once per distinct value: a float or a code per row."""
        distinct, indices = _distinct_values(column, size)
        answers = list(map(self._distinct_checks[field], distinct))
        values = np.array([0 if type(a) is RefusedValueError else a for a in answers])
        for position, answer in enumerate(answers):
            if type(answer) is RefusedValueError:
                rows = np.flatnonzero(indices == position).tolist()
                found += [(row, order, field, answer) for row in rows]
        return values[indices]

    def _numbers(self, field: str, column: Column, size: int, order: int, found: list) -> Any:
        """A number or flag column: numbers as one array, the rest value by value."""
        values = _plain_numbers(column)
        if values is None:
            return self._distinct(field, column, size, order, found)
        low, high = self.rules.bounds[field]
        with np.errstate(invalid="ignore"):
            accepted = np.isfinite(values) & (values >= low) & (values <= high)
            if field in self.rules.whole:
                accepted &= values == np.floor(values)
        refused = np.flatnonzero(~accepted)
        if refused.size:  # the rule decides the rest: what is wrong, or what arrays cannot read
            among_refused: list = []
            picked = _take(column, refused)
            values[refused] = self._distinct(field, picked, refused.size, order, among_refused)
            found += [(int(refused[row]), *rest) for row, *rest in among_refused]
        return values

    def _ids(self, columns: Mapping[str, Column], size: int, found: list) -> Any:
        """The id each row echoes, as text: the first id key given wins (``ID_KEYS``)."""
        chosen: Any = None
        for key in reversed(ID_KEYS):
            if key in columns:
                texts = self._id_texts(key, columns[key], size, found)
                if chosen is not None:  # both keys given: a row's later key fills its gaps
                    pairs = zip(_listed(chosen), _listed(texts), strict=True)
                    texts = [c if t is None else t for c, t in pairs]
                chosen = texts
        return [None] * size if chosen is None else chosen

    def _id_texts(self, key: str, column: Column, size: int, found: list) -> Any:
        """The column's ids as text: an Arrow array stays one when it holds text or integers."""
        if not isinstance(column, list | tuple):
            import pyarrow as pa
            import pyarrow.compute as pc

            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            if _is_text(column.type) or pa.types.is_integer(column.type):
                column = pc.cast(column, pa.string())
                if (pc.max(pc.utf8_length(column)).as_py() or 0) <= MAX_ID_LENGTH:
                    return column
            column = column.to_pylist()
        kinds = set(map(type, column))
        if (
            kinds <= {str, type(None)}
            and max(map(len, filter(None, column)), default=0) <= MAX_ID_LENGTH
        ):
            return list(column)
        texts = []
        for row, value in enumerate(column):
            try:
                value = self.rules[key](value)
            except RefusedValueError as refusal:
                found.append((row, len(FEATURE_FIELDS) + ID_KEYS.index(key), key, refusal))
                # The row is refused: its id as given names it in the rejects.
            texts.append(None if value is None else str(value))
        return texts

    @staticmethod
    def _as_code(check: Callable, code: Mapping[str, int]) -> Callable[[Any], int]:
        return lambda value: code[check(value)]

    @staticmethod
    def _as_float(check: Callable) -> Callable[[Any], float]:
        return lambda value: float(check(value))


class Remembered:
    """A field's check answering with the value or its ``RefusedValueError``, remembered per
    distinct value in ``seen`` (keyed by exact type: True must not find the answer for 1)."""

    def __init__(self, check: Callable[[Any], Any]):
        self.check = check
        self.seen: dict[tuple[type, Any], Any] = {}

    def __call__(self, value: Any) -> Any:
        if value is MISSING:
            return RefusedValueError("Field required", "missing")
        key = (type(value), value)
        try:
            return self.seen[key]
        except KeyError:
            pass
        except TypeError:  # a list or an object: never remembered
            return _run(self.check, value)
        result = _run(self.check, value)
        if len(self.seen) < MEMO_LIMIT:  # a flood of junk must not grow memory
            self.seen[key] = result
        return result


def _run(check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except RefusedValueError as refusal:
        return refusal


def _distinct_values(column: Column, size: int) -> tuple[list[Any], np.ndarray]:
    """The column's distinct values and each row's index among them (nulls as ``MISSING``)."""
    if not isinstance(column, list | tuple):
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(column.type) and column.null_count:
            column = column.dictionary_decode()  # its nulls become a value of their own below
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column, null_encoding="encode")
        values = [MISSING if value is None else value for value in column.dictionary.to_pylist()]
        return values, np.from_dlpack(column.indices).astype(np.intp)
    if set(map(type, column)) == {str}:  # the usual column: text, indexed in C
        seen = {value: index for index, value in enumerate(dict.fromkeys(column))}
        return list(seen), np.fromiter(map(seen.__getitem__, column), np.intp, len(column))
    distinct: list[Any] = []
    where: dict[tuple[type, Any], int] = {}
    positions = []
    for value in column:
        try:
            position = where.setdefault((type(value), value), len(distinct))
        except TypeError:  # unhashable: its own entry
            position = len(distinct)
        if position == len(distinct):
            distinct.append(value)
        positions.append(position)
    return distinct, np.array(positions, dtype=np.intp).reshape(size)


def _plain_numbers(column: Column) -> np.ndarray | None:
    """The column as float64 where it holds numbers, NaN elsewhere (nulls, other text: the rule
    decides those rows); None when it is not a column of numbers or text.

    Text counts as a number here only when it is a plain decimal (``schema.DECIMAL``), which
    Arrow parses to the same float as the rule's ``float()``: both round correctly.
    """
    if not isinstance(column, list | tuple):
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        kind = column.type
        if _is_text(kind):
            plain = pc.match_substring_regex(column, f"^{DECIMAL.pattern}$")
            column = pc.if_else(plain, column, pa.nulls(1, kind)[0])  # others: null, so NaN
        elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None
        floats = pc.cast(column, pa.float64(), safe=False)  # past 2**53 rounded, as numpy does
        if floats.null_count:
            floats = pc.fill_null(floats, to_arrow(np.array([np.nan]))[0])
        return np.from_dlpack(floats).copy()
    kinds = set(map(type, column))
    if kinds <= {int, float} or (kinds == {str} and all(map(DECIMAL.fullmatch, column))):
        return np.array(column, dtype=np.float64)
    return None


def _take(column: Column, rows: np.ndarray) -> Column:
    if not isinstance(column, list | tuple):
        import pyarrow as pa

        taken = column.take(to_arrow(rows))  # a dictionary keeps its whole dictionary: drop it
        return taken.dictionary_decode() if pa.types.is_dictionary(taken.type) else taken
    return [column[row] for row in rows.tolist()]


def to_arrow(values: np.ndarray) -> pa.Array:
    """A numpy array as an Arrow array. Arrow to numpy goes through DLPack, and this way back
    through buffers, because ``pa.array`` and ``to_numpy`` import pandas: 0.3 CPU-s of a
    million-row ``score.py`` run that uses no pandas."""
    import pyarrow as pa

    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    values = np.ascontiguousarray(values)
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _listed(ids: Any) -> list[str | None]:
    return ids if isinstance(ids, list) else ids.to_pylist()


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


KNOWN_KEYS = frozenset((*FEATURE_FIELDS, *ID_KEYS))


@functools.lru_cache(maxsize=256)
def _course_spelling(keys: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(normalize_token(k) if isinstance(k, str) else k for k in keys)


def _course_keys(customer: dict[Any, Any]) -> dict[Any, Any]:
    """Keys in the course's spelling; a later key wins when two spellings meet. A batch's
    customers share a few key orders, each spelled out once."""
    if KNOWN_KEYS.issuperset(customer):
        return customer
    try:
        return dict(zip(_course_spelling(tuple(customer)), customer.values(), strict=True))
    except TypeError:  # an unhashable key cannot come from JSON; be safe all the same
        return {normalize_token(k) if isinstance(k, str) else k: v for k, v in customer.items()}


_FEATURES = itemgetter(*FEATURE_FIELDS)


def json_columns(objects: Sequence[dict[str, Any] | None]) -> dict[str, Column]:
    """A column per field from JSON objects (None: not an object), ``MISSING`` where absent."""
    try:  # the usual batch: every object has every field
        columns: dict[str, Column] = dict(
            zip(FEATURE_FIELDS, zip(*map(_FEATURES, objects), strict=True), strict=True)  # type: ignore[arg-type]
        )
    except (KeyError, TypeError):
        empty: dict[str, Any] = {}
        columns = {
            field: [(o or empty).get(field, MISSING) for o in objects] for field in FEATURE_FIELDS
        }
    if not objects:
        columns = {field: [] for field in FEATURE_FIELDS}
    for key in ID_KEYS:
        if any(key in o for o in objects if o is not None):
            columns[key] = [None if o is None else o.get(key) for o in objects]
    return columns
