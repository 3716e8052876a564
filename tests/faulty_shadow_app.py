"""``predict:app`` with a shadow that raises on every request: fault injection under gunicorn."""

from predict import app


class ExplodingScorer:
    def probabilities(self, checked):
        raise RuntimeError("injected: the shadow model fails on every request")


app.extensions["churn.shadow"].scorer = ExplodingScorer()
