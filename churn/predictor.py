"""The serving model: the artifact loaded safely, checked against its metadata, compiled."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn import artifact
from churn.artifact import THRESHOLD_FROM_DEFAULT, ModelFileError
from churn.columns import Checked, Validator
from churn.config import THRESHOLD_FROM_ENVIRONMENT
from churn.drift import DriftBins, FeatureReference
from churn.features import FEATURE_FIELDS
from churn.scorer import Scorer


@dataclass(frozen=True)
class Predictor:
    weights: artifact.ModelWeights
    scorer: Scorer
    validator: Validator
    metadata: dict[str, Any]
    version: str
    threshold: float
    threshold_source: str  # "default", "costs" (chosen at training) or "CHURN_THRESHOLD"
    drift_bins: DriftBins | None  # None: trained before drift watch

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
        _check_fields(weights, metadata["schema"], model_file)
        validator = Validator(metadata["schema"])
        scorer = Scorer.of(weights, validator.vocabularies)
        drift_bins = _drift_bins(metadata, validator.vocabularies, model_file)
        source = metadata.get("threshold_source", THRESHOLD_FROM_DEFAULT)
        if threshold is not None:
            source = THRESHOLD_FROM_ENVIRONMENT
        threshold = float(metadata["threshold"] if threshold is None else threshold)
        return cls(
            weights=weights,
            scorer=scorer,
            validator=validator,
            metadata=metadata,
            version=version,
            threshold=threshold,
            threshold_source=source,
            drift_bins=drift_bins,
        )

    @functools.cached_property
    def version_header(self) -> str:
        """What every /predict answer says about the model: its version and the threshold."""
        return f"{self.version}; threshold={self.threshold:g}"

    def probabilities(self, checked: Checked) -> list[float]:
        """Each row's probability; one customer (most requests) without numpy's arrays."""
        if len(checked.ids) == 1:
            return [self.scorer.probability(checked)]
        return self.scorer.probabilities(checked).tolist()

    def results(
        self, checked: Checked, probabilities: list[float], explain: bool = False
    ) -> list[dict[str, Any]]:
        """The answer for each checked (valid) customer, in order (README, API)."""
        results = []
        for row, (probability, customer_id) in enumerate(
            zip(probabilities, checked.ids, strict=True)
        ):
            decision = probability >= self.threshold
            result: dict[str, Any] = {"churn_probability": probability, "churn": decision}
            if customer_id is not None:
                result["customer_id"] = customer_id
            if explain:
                contributions = self.scorer.explain(checked, row, self.validator.vocabularies)
                result["explanation"] = {
                    "intercept": self.scorer.intercept,
                    "contributions": contributions,
                }
            results.append(result)
        return results

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


def _check_fields(weights: artifact.ModelWeights, schema: dict[str, Any], model_file: Path) -> None:
    """The model's fields must be the ones this code declares (churn/features.py), and its
    metadata may allow only the values the model was trained with."""
    trained: dict[str, set[str]] = {}
    for name in weights.weights:
        field, _, value = name.partition(weights.separator)
        trained.setdefault(field, set()).add(value)
    sections = ("categorical", "flags", "numeric")
    fields = set(trained).union(*(schema.get(section, ()) for section in sections))
    expected = set(FEATURE_FIELDS)
    if fields != expected:
        differences = [f"{f} (only in the model)" for f in sorted(fields - expected)]
        differences += [f"{f} (missing from the model)" for f in sorted(expected - fields)]
        raise ModelFileError(
            f"{model_file} was trained with other fields than this code declares: "
            f"{', '.join(differences)}. Retrain with `python train.py`."
        )
    for field, values in schema["categorical"].items():
        unknown = set(values) - trained.get(field, set())
        if unknown:
            raise ModelFileError(
                f"metadata of {model_file} allows {field} values the model never saw: "
                f"{sorted(unknown)}; retrain with `python train.py`."
            )


def _drift_bins(
    metadata: dict[str, Any], vocabularies: dict[str, Any], model_file: Path
) -> DriftBins | None:
    """The frozen bins saved with the model, or None for a model trained before they were.
    They must cover every value the service accepts, or counting would fail."""
    section = metadata.get("drift_reference")
    if not section:
        return None
    reference = {
        name: FeatureReference.from_json(entry) for name, entry in section["features"].items()
    }
    schema = metadata["schema"]
    flags = {field: [str(value) for value in values] for field, values in schema["flags"].items()}
    for field, values in {**schema["categorical"], **flags}.items():  # a bin's name is text
        if field not in reference or set(reference[field].bins) != set(values):
            raise ModelFileError(
                f"metadata of {model_file} has drift bins for {field} that do not match its "
                "schema; retrain with `python train.py`."
            )
    return DriftBins(reference, vocabularies)
