"""The serving model: the artifact loaded safely, checked against its metadata, compiled."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn import artifact
from churn.artifact import ModelFileError
from churn.config import THRESHOLD_FROM_DEFAULT, THRESHOLD_FROM_ENVIRONMENT
from churn.drift import FeatureReference, load_reference
from churn.fastbatch import BatchFastPath
from churn.features import CATEGORICAL_FIELDS, FLAG_FIELDS, NUMERIC_FIELDS
from churn.rules import CustomerRules
from churn.schema import CustomerValidator
from churn.scorer import CompiledScorer


@dataclass(frozen=True)
class Predictor:
    scorer: CompiledScorer
    validator: CustomerValidator
    metadata: dict[str, Any]
    version: str
    threshold: float
    threshold_source: str  # "default", "costs" (chosen at training) or "CHURN_THRESHOLD"
    rules: CustomerRules
    fast_batch: BatchFastPath  # /predict batches: column checks instead of a model each
    drift_reference: dict[str, FeatureReference] | None  # None: trained before drift watch

    @classmethod
    def load(cls, model_file: Path, threshold: float | None = None) -> Predictor:
        """Load and check the artifact; raises ``ModelFileError`` saying what to do."""
        weights = artifact.load_weights(model_file)
        metadata = artifact.load_metadata(model_file)
        return cls.build(weights, metadata, model_file, threshold)

    @classmethod
    def build(
        cls,
        weights: artifact.ModelWeights,
        metadata: dict[str, Any],
        model_file: Path,
        threshold: float | None = None,
    ) -> Predictor:
        """Check loaded weights against their metadata and compile them; ``ModelFileError``."""
        version = artifact.sha256_hex(weights.raw)
        _check_metadata(metadata, version, model_file)
        numeric_fields = FLAG_FIELDS + NUMERIC_FIELDS
        scorer = CompiledScorer.compile(weights, numeric_fields, CATEGORICAL_FIELDS)
        _check_vocabulary(scorer, metadata["schema"], model_file)
        reference = load_reference(metadata)
        _check_reference(reference, metadata["schema"], model_file)
        validator = CustomerValidator(metadata["schema"])
        rules = CustomerRules.build(validator)
        source = metadata.get("threshold_source", THRESHOLD_FROM_DEFAULT)
        if threshold is not None:
            source = THRESHOLD_FROM_ENVIRONMENT
        threshold = float(metadata["threshold"] if threshold is None else threshold)
        return cls(
            scorer=scorer,
            validator=validator,
            metadata=metadata,
            version=version,
            threshold=threshold,
            threshold_source=source,
            rules=rules,
            fast_batch=BatchFastPath(rules, scorer, threshold),
            drift_reference=reference,
        )

    @functools.cached_property
    def version_header(self) -> str:
        """What every /predict answer says about the model: its version and the threshold."""
        return f"{self.version}; threshold={self.threshold:g}"

    def predict(
        self, customers: list[dict[str, Any]], explain: bool = False
    ) -> list[dict[str, Any]]:
        """Results for validated customers, in order (see the README's API section)."""
        probabilities = self.scorer.probabilities(customers)
        return [
            self.result(probability, customer.get("customer_id"), customer if explain else None)
            for customer, probability in zip(customers, probabilities, strict=True)
        ]

    def result(
        self, probability: float, customer_id: str | None, explained: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One customer's answer, from its churn probability; ``explained``: with the why."""
        result: dict[str, Any] = {
            "churn_probability": probability,
            "churn": probability >= self.threshold,
        }
        if customer_id is not None:
            result["customer_id"] = customer_id
        if explained is not None:
            result["explanation"] = {
                "intercept": self.scorer.intercept,
                "contributions": self.scorer.explain(explained),
            }
        return result

    def describe(self) -> dict[str, Any]:
        """What the model endpoint shows: version, training facts, threshold and schema."""
        meta = self.metadata
        return {
            "version": self.version,
            "artifact_file": meta.get("artifact_file"),
            "trained_at": meta.get("created_at"),
            "params": meta.get("params"),
            "metrics": meta.get("metrics"),
            "data": meta.get("data"),
            "versions": meta.get("versions"),
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            # The costs behind the saved threshold (null without costs), even when overridden.
            "threshold_choice": meta.get("threshold_choice"),
            "schema": meta["schema"],
        }


def _check_metadata(metadata: dict[str, Any], version: str, model_file: Path) -> None:
    missing = [key for key in ("schema", "threshold", "artifact_sha256") if key not in metadata]
    if missing:
        raise ModelFileError(
            f"metadata of {model_file} lacks {', '.join(missing)}; retrain with `python train.py`."
        )
    if metadata["artifact_sha256"] != version:
        raise ModelFileError(
            f"{model_file} does not match its metadata (SHA-256 differs): the two files come from "
            "different training runs. Retrain with `python train.py` or restore both files."
        )


def _check_vocabulary(scorer: CompiledScorer, schema: dict[str, Any], model_file: Path) -> None:
    for field, values in schema["categorical"].items():
        unknown = set(values) - scorer.known_values(field)
        if unknown:
            raise ModelFileError(
                f"metadata of {model_file} allows {field} values the model never saw: "
                f"{sorted(unknown)}; retrain with `python train.py`."
            )


def _check_reference(
    reference: dict[str, FeatureReference] | None, schema: dict[str, Any], model_file: Path
) -> None:
    """The drift bins must cover every value the service accepts, or counting would fail."""
    if reference is None:
        return
    expected = {
        **schema["categorical"],
        **{f: [str(v) for v in schema["flags"][f]] for f in schema["flags"]},
    }
    for field, values in expected.items():
        if field not in reference or set(reference[field].bins) != set(values):
            raise ModelFileError(
                f"metadata of {model_file} has drift bins for {field} that do not match its "
                "schema; retrain with `python train.py`."
            )
