"""What a trained pair must show to be *this* model: checks shared by the artifact and training
tests, written with scikit-learn directly so they do not reuse the code they check."""

from __future__ import annotations

import functools
import pickle
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from churn.config import PROJECT_ROOT
from churn.features import FEATURE_FIELDS


def feature_names_of(schema: dict[str, Any]) -> set[str]:
    """The DictVectorizer columns a model trained on ``schema`` has: one per category value."""
    one_hot = {
        f"{field}={value}" for field, values in schema["categorical"].items() for value in values
    }
    return one_hot | set(schema["numeric"]) | set(schema["flags"])


def held_out_auc(dv: Any, model: Any, cleaned: pd.DataFrame) -> float:
    """AUC on the course's held-out 20% (``random_state=1``) of a cleaned frame."""
    _, test = train_test_split(cleaned, test_size=0.2, random_state=1)
    records = test[list(FEATURE_FIELDS)].to_dict(orient="records")
    return float(roc_auc_score(test["churn"], model.predict_proba(dv.transform(records))[:, 1]))


@functools.cache
def committed_pair() -> tuple[Any, Any]:
    """The committed (DictVectorizer, LogisticRegression), loaded with plain pickle."""
    with open(PROJECT_ROOT / "model_C=1.0.bin", "rb") as handle:
        return pickle.load(handle)


def sklearn_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """The course's way on raw rows: clean the text as train.py does, then the committed
    DictVectorizer and predict_proba."""
    from churn.data import clean

    dv, model = committed_pair()
    records = clean(frame)[list(FEATURE_FIELDS)].to_dict(orient="records")
    return model.predict_proba(dv.transform(records))[:, 1]
