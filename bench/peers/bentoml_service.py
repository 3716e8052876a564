"""The churn model as a BentoML service: the course's model code, BentoML's serving.

    MODEL_FILE=../../model_C=1.0.bin bentoml serve bentoml_service:Churn --port 9696

The request body is the customer itself (BentoML's "root input": a positional-only argument),
so it answers the same JSON as churn-serving for the same POST. Runs in its own virtual
environment (bench/contenders.py), not the project's.
"""

import os
import pickle

import bentoml

WORKERS = int(os.environ.get("WEB_CONCURRENCY", "2"))
THRESHOLD = float(os.environ.get("CHURN_THRESHOLD", "0.5"))


@bentoml.service(workers=WORKERS)
class Churn:
    def __init__(self) -> None:
        with open(os.environ["MODEL_FILE"], "rb") as handle:
            self.dv, self.model = pickle.load(handle)

    @bentoml.api(route="/predict")
    def predict(self, customer: dict, /) -> dict:
        probability = float(self.model.predict_proba(self.dv.transform([customer]))[0, 1])
        return {"churn_probability": probability, "churn": probability >= THRESHOLD}
