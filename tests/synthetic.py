"""Synthetic customers in the raw Telco CSV layout, for tests that need rows of their own."""

from __future__ import annotations

import numpy as np
import pandas as pd

YES_NO = ["Yes", "No"]
INTERNET_EXTRA = ["Yes", "No", "No internet service"]
RAW_CHOICES = {
    "gender": ["Female", "Male"],
    "Partner": YES_NO,
    "Dependents": YES_NO,
    "PhoneService": YES_NO,
    "MultipleLines": ["Yes", "No", "No phone service"],
    "InternetService": ["DSL", "Fiber optic", "No"],
    "OnlineSecurity": INTERNET_EXTRA,
    "OnlineBackup": INTERNET_EXTRA,
    "DeviceProtection": INTERNET_EXTRA,
    "TechSupport": INTERNET_EXTRA,
    "StreamingTV": INTERNET_EXTRA,
    "StreamingMovies": INTERNET_EXTRA,
    "Contract": ["Month-to-month", "One year", "Two year"],
    "PaperlessBilling": YES_NO,
    "PaymentMethod": [
        "Electronic check",
        "Mailed check",
        "Bank transfer (automatic)",
        "Credit card (automatic)",
    ],
}
RAW_COLUMNS = [
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
]


def raw_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Random customers as text, like the CSV; churn depends on contract and tenure."""
    rng = np.random.default_rng(seed)
    data = {column: rng.choice(values, size=rows) for column, values in RAW_CHOICES.items()}
    tenure = rng.integers(0, 73, size=rows)
    monthly = np.round(rng.uniform(18, 120, size=rows), 2)
    total = np.round(tenure * monthly, 2).astype(str)
    total[tenure == 0] = " "  # new customers have a blank TotalCharges, as in the real file
    risk = (data["Contract"] == "Month-to-month") * 1.5 - tenure / 24 + rng.normal(0, 0.7, rows)
    frame = pd.DataFrame(
        {
            "customerID": [f"{i:04d}-SYNTH" for i in range(rows)],
            **data,
            "SeniorCitizen": rng.integers(0, 2, size=rows).astype(str),
            "tenure": tenure.astype(str),
            "MonthlyCharges": monthly.astype(str),
            "TotalCharges": total,
            "Churn": np.where(risk > 0, "Yes", "No"),
        }
    )
    return frame[RAW_COLUMNS]


def write_csv(path, frame: pd.DataFrame) -> str:
    frame.to_csv(path, index=False)
    return str(path)
