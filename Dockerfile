# churn-serving: the prediction service in a container (docker build -t churn-serving .).
# Stage 1 turns Pipfile.lock into a hash-pinned requirements list; stage 2 installs it with
# pip --require-hashes, so the image holds exactly the lock's default packages and no pipenv.
FROM python:3.11.14-slim-bookworm AS lock

WORKDIR /src
RUN pip install --no-cache-dir pipenv==2026.10.3
COPY Pipfile Pipfile.lock ./
# Default packages only: dev tools (pytest, awsebcli, ...) stay out of the image.
RUN pipenv requirements --hash > requirements.txt


FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=9696

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
