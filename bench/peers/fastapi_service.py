"""The peer a user would most likely write instead: FastAPI on uvicorn, the course's model code.

    MODEL_FILE=../../model_C=1.0.bin uvicorn fastapi_service:async_app --workers 2

``async_app`` answers in an ``async def`` handler (on the event loop), ``sync_app`` in a plain
``def`` one (FastAPI runs it in its thread pool). Both score with scikit-learn per request, as
the course does, and answer the same JSON as churn-serving. Runs in its own virtual environment
(bench/peers/envs.py), not the project's.
"""

import os
import pickle

from fastapi import FastAPI

THRESHOLD = float(os.environ.get("CHURN_THRESHOLD", "0.5"))

with open(os.environ["MODEL_FILE"], "rb") as handle:
    dv, model = pickle.load(handle)


def score(customer: dict) -> dict:
    probability = float(model.predict_proba(dv.transform([customer]))[0, 1])
    return {"churn_probability": probability, "churn": probability >= THRESHOLD}


async_app = FastAPI()
sync_app = FastAPI()


@async_app.post("/predict")
async def predict_async(customer: dict) -> dict:
    return score(customer)


@sync_app.post("/predict")
def predict_sync(customer: dict) -> dict:
    return score(customer)


@async_app.get("/health")
@sync_app.get("/health")
async def health() -> dict:
    return {"status": "ok"}
