"""The ceiling: a Flask route that parses the JSON body and returns a constant.

Nothing a model server does can be faster than this under the same gunicorn settings; the
benchmark reports how close the real service gets to it.
"""

from flask import Flask, jsonify, request

app = Flask("ceiling")


@app.route("/predict", methods=["POST"])
def predict():
    request.get_json()
    return jsonify({"churn_probability": 0.5, "churn": False})


@app.route("/health")
def health():
    return jsonify({"status": "ok"})
