# churn-serving: the prediction service in a container (docker build -t churn-serving .).
# Stage 1 checks that Pipfile.lock matches the Pipfile and turns the lock's [serving] group into
# a hash-pinned requirements list; stage 2 installs it with pip --require-hashes. The image holds
# exactly what serving imports, at the lock's versions: no scikit-learn, scipy, pandas or pipenv.
FROM python:3.11.14-slim-bookworm AS lock

WORKDIR /src
RUN pip install --no-cache-dir pipenv==2026.10.3
COPY Pipfile Pipfile.lock ./
# `pipenv verify` stops the build when the Pipfile changed without a new lock, as
# `pipenv install --deploy` would. Training and dev tools stay out: only the [serving] group.
RUN pipenv verify && pipenv requirements --hash --categories serving > requirements.txt


FROM python:3.11.14-slim-bookworm

# Logs are JSON lines for the engine and EB. No access log by default: on EB, nginx in front
# already logs every request; GUNICORN_ACCESSLOG=- turns it on (README, Logs).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=9696 \
    LOG_FORMAT=json \
    GUNICORN_ACCESSLOG=

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin churn

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes, not on code changes.
COPY --from=lock /src/requirements.txt ./
RUN pip install --require-hashes -r requirements.txt

COPY gunicorn.conf.py predict.py model_C=1.0.bin model_C=1.0.json ./
COPY churn/ ./churn/
# Candidate models a shadow deployment scores beside the live one (SHADOW_MODEL_FILE).
COPY models/ ./models/

# Numeric so orchestrators can verify it is not root without reading /etc/passwd.
USER 10001
EXPOSE 9696

# Python's own urllib: no curl or wget needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '9696') + '/health', timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "predict:app"]
