"""The churn model as an MLServer custom runtime, answering churn-serving's JSON at /predict.

    MODEL_FILE=../../../model_C=1.0.bin mlserver start .

MLServer's own protocol (V2 inference, /v2/models/churn/infer) wants tensors; a custom handler
serves the customer JSON instead, dispatched like a prediction to the parallel inference workers
(``parallel_workers``). Runs in its own virtual environment (bench/contenders.py).
"""

import os
import pickle

from mlserver import MLModel
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse

THRESHOLD = float(os.environ.get("CHURN_THRESHOLD", "0.5"))


class ChurnRuntime(MLModel):
    async def load(self) -> bool:
        with open(os.environ["MODEL_FILE"], "rb") as handle:
            self.dv, self.model = pickle.load(handle)
        return True

    @custom_handler(rest_path="/predict")
    async def predict_customer(self, customer: dict) -> dict:
        probability = float(self.model.predict_proba(self.dv.transform([customer]))[0, 1])
        return {"churn_probability": probability, "churn": probability >= THRESHOLD}

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError("this benchmark serves /predict only")
