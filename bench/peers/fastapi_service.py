"""The peer a user would most likely write instead: FastAPI on uvicorn, the course's model code.

    MODEL_FILE=../../model_C=1.0.bin uvicorn fastapi_service:app --workers 2

An ``async def`` handler, scoring with scikit-learn per request as the course does, answering the
same JSON as churn-serving. Runs in its own virtual environment (bench/contenders.py).
"""

import os
import pickle

from fastapi import FastAPI

THRESHOLD = float(os.environ.get("CHURN_THRESHOLD", "0.5"))

with open(os.environ["MODEL_FILE"], "rb") as handle:
    dv, model = pickle.load(handle)

app = FastAPI()


@app.post("/predict")
async def predict(customer: dict) -> dict:
    probability = float(model.predict_proba(dv.transform([customer]))[0, 1])
    return {"churn_probability": probability, "churn": probability >= THRESHOLD}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}
