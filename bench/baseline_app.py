"""The course's way of serving, for comparison: sklearn's transform + predict_proba per request.

    cd bench && MODEL_FILE=../model_C=1.0.bin gunicorn --bind 0.0.0.0:9696 baseline_app:app

(from bench/, which holds no gunicorn.conf.py: gunicorn would read the project's otherwise).
"""

import os
import pickle

from flask import Flask, jsonify, request

with open(os.environ.get("MODEL_FILE", "model_C=1.0.bin"), "rb") as f_in:
    dv, model = pickle.load(f_in)

app = Flask("churn")


@app.route("/predict", methods=["POST"])
def predict():
    customer = request.get_json()
    X = dv.transform([customer])
    y_pred = model.predict_proba(X)[0, 1]
    churn = y_pred >= 0.5
    return jsonify({"churn_probability": float(y_pred), "churn": bool(churn)})


@app.route("/health")
def health():
    return jsonify({"status": "ok"})
