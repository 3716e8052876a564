"""Synthetic Telco-like customers of any size, for the batch benchmarks: never the real rows.

Each column follows the real export's category mix (shares measured on the public Telco CSV,
rounded) and its structure ("No internet service" in the six internet add-ons when there is no
internet, "No phone service" likewise), tenure 1-72 months, a blank TotalCharges for the 0.16%
of brand-new customers. Written chunk by chunk as CSV text, or as the Parquet a pandas export of
that CSV would give.

    python -m bench.customers PATH ROWS
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
YES_NO = ("Yes", "No")
INTERNET_ADDONS = ("OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport",
                   "StreamingTV", "StreamingMovies")  # fmt: skip
# (values, shares) per column, in the export's order; add-ons' shares among internet users.
MIX: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "gender": (("Male", "Female"), (0.505, 0.495)),
    "SeniorCitizen": (("1", "0"), (0.162, 0.838)),
    "Partner": (YES_NO, (0.483, 0.517)),
    "Dependents": (YES_NO, (0.3, 0.7)),
    "PhoneService": (YES_NO, (0.903, 0.097)),
    "MultipleLines": (YES_NO, (0.467, 0.533)),  # among customers with phone service
    "InternetService": (("Fiber optic", "DSL", "No"), (0.44, 0.344, 0.216)),
    **dict(zip(INTERNET_ADDONS, [(YES_NO, (share, 1 - share)) for share in
                                 (0.366, 0.44, 0.439, 0.37, 0.491, 0.495)], strict=True)),
    "Contract": (("Month-to-month", "Two year", "One year"), (0.55, 0.241, 0.209)),
    "PaperlessBilling": (YES_NO, (0.592, 0.408)),
    "PaymentMethod": (("Electronic check", "Mailed check", "Bank transfer (automatic)",
                       "Credit card (automatic)"), (0.336, 0.229, 0.219, 0.216)),
    "Churn": (YES_NO, (0.265, 0.735)),
}  # fmt: skip


def chunk(rows: int, first_id: int, rng: np.random.Generator) -> pa.Table:
    """``rows`` customers in the raw export's columns, all text as in the CSV."""
    picked = {}
    for name, (values, shares) in MIX.items():
        index = rng.choice(len(values), size=rows, p=np.array(shares) / sum(shares))
        picked[name] = np.array(values, dtype=object)[index]
    picked["MultipleLines"][picked["PhoneService"] == "No"] = "No phone service"
    for name in INTERNET_ADDONS:
        picked[name][picked["InternetService"] == "No"] = "No internet service"
    tenure = rng.integers(1, 73, size=rows)
    tenure[rng.random(rows) < 0.0016] = 0  # brand-new: a blank TotalCharges, as in the CSV
    monthly = np.round(rng.uniform(18.25, 118.75, size=rows), 2)
    total = np.round(tenure * monthly * rng.uniform(0.9, 1.1, rows), 2)
    ids = pc.cast(pa.array(np.arange(first_id, first_id + rows)), pa.string())
    numbers = {
        "customerID": pc.binary_join_element_wise(ids, "SYNTH", "-"),
        "tenure": pc.cast(pa.array(tenure), pa.string()),
        "MonthlyCharges": pc.cast(pa.array(monthly), pa.string()),
        "TotalCharges": pc.if_else(tenure == 0, " ", pc.cast(pa.array(total), pa.string())),
    }
    columns = list(MIX)  # the export's order, with the numbers in their places
    order = ["customerID", *columns[:4], "tenure", *columns[4:-1], "MonthlyCharges",
             "TotalCharges", "Churn"]  # fmt: skip
    return pa.table({name: picked.get(name, numbers.get(name)) for name in order})


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


if __name__ == "__main__":
    write(Path(sys.argv[1]), int(sys.argv[2]))
