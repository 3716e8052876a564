"""The model: a DictVectorizer + LogisticRegression pair, the course's split, cross-validation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, train_test_split

from churn.features import FEATURE_FIELDS, TARGET

TEST_SIZE = 0.2
RANDOM_STATE = 1


@dataclass(frozen=True)
class CrossValidation:
    """One C's cross-validation: each fold's AUC, and every row's out-of-fold probability."""

    C: float
    fold_aucs: tuple[float, ...]
    # Row i's probability from the fold model that did not train on it (the threshold search's
    # input: honest scores without touching the held-out split).
    out_of_fold: np.ndarray = field(compare=False, repr=False)

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_aucs))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_aucs))


def feature_dicts(frame: pd.DataFrame) -> list[dict]:
    return frame[list(FEATURE_FIELDS)].to_dict(orient="records")


def fit(frame: pd.DataFrame, C: float) -> tuple[DictVectorizer, LogisticRegression]:
    """Train the pair the course pickles.

    The course's default lbfgs solver fails to converge on these unscaled features (charges run
    to thousands while one-hot columns are 0/1). Newton-Cholesky solves this small, dense
    problem with second-order steps, so it converges to the optimum in a few iterations whatever
    the scale, with the same objective and the same artifact type.
    """
    dv = DictVectorizer(sparse=False)
    X = dv.fit_transform(feature_dicts(frame))
    model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=1000)
    model.fit(X, frame[TARGET].to_numpy())
    return dv, model


def predict(dv: DictVectorizer, model: LogisticRegression, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(dv.transform(feature_dicts(frame)))[:, 1]


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The course's split: 20% held out for the final test, ``random_state=1``."""
    full_train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=RANDOM_STATE)
    return full_train.reset_index(drop=True), test.reset_index(drop=True)


def cross_validate(frame: pd.DataFrame, C: float, folds: int) -> CrossValidation:
    kfold = KFold(n_splits=folds, shuffle=True, random_state=RANDOM_STATE)
    aucs = []
    out_of_fold = np.empty(len(frame), dtype=np.float64)
    for train_idx, val_idx in kfold.split(frame):
        dv, model = fit(frame.iloc[train_idx], C)
        validation = frame.iloc[val_idx]
        out_of_fold[val_idx] = predict(dv, model, validation)
        aucs.append(float(roc_auc_score(validation[TARGET].to_numpy(), out_of_fold[val_idx])))
    return CrossValidation(C=C, fold_aucs=tuple(aucs), out_of_fold=out_of_fold)
