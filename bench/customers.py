"""Synthetic Telco-like customer files of any size, for the batch benchmark and its smoke test.

Generated, never copied: each column follows the real export's category mix (shares measured on
the public Telco CSV, rounded), with its structure (no internet service means "No internet
service" in the six internet add-ons; no phone service means "No phone service"), a tenure of
1 to 72 months, blank TotalCharges for the 0.16% of brand-new customers. Written chunk by chunk
in the raw export's layout, as CSV text or as the Parquet a pandas export of it would give.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

CHUNK_ROWS = 500_000
NEW_CUSTOMER_SHARE = 0.0016
YES_NO = ("Yes", "No")
# (values, shares) per column, shares as in the real export.
MIX: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "gender": (("Male", "Female"), (0.505, 0.495)),
    "Partner": (YES_NO, (0.483, 0.517)),
    "Dependents": (YES_NO, (0.3, 0.7)),
    "PhoneService": (YES_NO, (0.903, 0.097)),
    "MultipleLines": (YES_NO, (0.467, 0.533)),  # among customers with phone service
    "InternetService": (("Fiber optic", "DSL", "No"), (0.44, 0.344, 0.216)),
    "OnlineSecurity": (YES_NO, (0.366, 0.634)),  # this and the next five: among internet users
    "OnlineBackup": (YES_NO, (0.44, 0.56)),
    "DeviceProtection": (YES_NO, (0.439, 0.561)),
    "TechSupport": (YES_NO, (0.37, 0.63)),
    "StreamingTV": (YES_NO, (0.491, 0.509)),
    "StreamingMovies": (YES_NO, (0.495, 0.505)),
    "Contract": (("Month-to-month", "Two year", "One year"), (0.55, 0.241, 0.209)),
    "PaperlessBilling": (YES_NO, (0.592, 0.408)),
    "PaymentMethod": (
        (
            "Electronic check",
            "Mailed check",
            "Bank transfer (automatic)",
            "Credit card (automatic)",
        ),
        (0.336, 0.229, 0.219, 0.216),
    ),
}
INTERNET_ADDONS = tuple(list(MIX)[6:12])
SENIOR_SHARE = 0.162


def chunk(rows: int, first_id: int, rng: np.random.Generator) -> pa.Table:
    """``rows`` customers in the raw export's columns, all text as in the CSV."""
    picked = {name: _choose(rng, *MIX[name], rows) for name in MIX}
    picked["MultipleLines"] = _where(
        picked["PhoneService"] == "No", "No phone service", picked["MultipleLines"]
    )
    no_internet = picked["InternetService"] == "No"
    for name in INTERNET_ADDONS:
        picked[name] = _where(no_internet, "No internet service", picked[name])
    tenure = rng.integers(1, 73, size=rows)
    tenure[rng.random(rows) < NEW_CUSTOMER_SHARE] = 0
    monthly = np.round(rng.uniform(18.25, 118.75, size=rows), 2)
    total = pc.cast(
        pa.array(np.round(tenure * monthly * rng.uniform(0.9, 1.1, rows), 2)), pa.string()
    )
    total = pc.if_else(pa.array(tenure == 0), " ", total)  # new customers: blank, as in the CSV
    ids = pc.binary_join_element_wise(
        pc.cast(pa.array(np.arange(first_id, first_id + rows)), pa.string()), "SYNTH", "-"
    )
    columns = {
        "customerID": ids,
        "gender": picked["gender"],
        "SeniorCitizen": pc.cast(
            pa.array(rng.random(rows) < SENIOR_SHARE).cast(pa.int8()), pa.string()
        ),
        **{name: picked[name] for name in ("Partner", "Dependents")},
        "tenure": pc.cast(pa.array(tenure), pa.string()),
        **{name: picked[name] for name in list(MIX)[3:]},
        "MonthlyCharges": pc.cast(pa.array(monthly), pa.string()),
        "TotalCharges": total,
        "Churn": _choose(rng, YES_NO, (0.265, 0.735), rows),
    }
    return pa.table(columns)


def _choose(rng: np.random.Generator, values, shares, rows: int) -> np.ndarray:
    probabilities = np.array(shares) / sum(shares)
    return np.array(values, dtype=object)[rng.choice(len(values), size=rows, p=probabilities)]


def _where(mask: np.ndarray, value: str, values: np.ndarray) -> np.ndarray:
    values = values.copy()
    values[mask] = value
    return values


def as_exported_parquet(table: pa.Table) -> pa.Table:
    """What ``pd.read_csv(...).to_parquet()`` of the export gives: numbers typed, the rest text."""
    typed = {"SeniorCitizen": pa.int64(), "tenure": pa.int64(), "MonthlyCharges": pa.float64()}
    for name, kind in typed.items():
        table = table.set_column(table.schema.get_field_index(name), name, table[name].cast(kind))
    return table


def write(path: Path, rows: int, seed: int = 0) -> Path:
    """Write ``rows`` customers to ``path`` (.csv or .parquet), chunk by chunk; return it."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for start in range(0, rows, CHUNK_ROWS):
            table = chunk(min(CHUNK_ROWS, rows - start), start, rng)
            if path.suffix == ".parquet":
                table = as_exported_parquet(table)
                writer = writer or pq.ParquetWriter(path, table.schema)
            else:
                options = pa_csv.WriteOptions(quoting_style="needed")
                writer = writer or pa_csv.CSVWriter(path, table.schema, write_options=options)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


if __name__ == "__main__":  # python -m bench.customers PATH ROWS
    write(Path(sys.argv[1]), int(sys.argv[2]))
