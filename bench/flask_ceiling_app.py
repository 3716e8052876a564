"""A Flask route that parses the JSON body and returns a constant: what Flask's routing costs.

It was the benchmark's ceiling while /predict was a Flask view; since /predict is a plain WSGI
app (churn/endpoint.py) the real ceiling is bench/ceiling_app.py, and this row shows how much
Flask's request machinery alone would take.
"""

from flask import Flask, jsonify, request

app = Flask("flask_ceiling")


@app.route("/predict", methods=["POST"])
def predict():
    request.get_json()
    return jsonify({"churn_probability": 0.5, "churn": False})


@app.route("/health")
def health():
    return jsonify({"status": "ok"})
