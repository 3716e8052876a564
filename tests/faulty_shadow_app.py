"""``predict:app`` with a shadow that raises on every request: fault injection under gunicorn."""

from types import SimpleNamespace

from predict import app


class ExplodingScorer:
    def probabilities(self, customers):
        raise RuntimeError("injected: the shadow model fails on every request")


app.extensions["churn.shadow"].predictor = SimpleNamespace(scorer=ExplodingScorer(), threshold=0.5)
