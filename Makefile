# churn-serving: `make run` serves, `make test` tests. Both set up everything they need first:
# pipenv, the locked environment (.venv/ in the project) and, for the tests, the data.
SHELL := /bin/bash
PYTHON ?= python3
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
PIPENV := $(PYTHON) -m pipenv
# The environment's interpreter: Debian's CPython 3.11 where the machine has it. Debian builds it
# with PGO and LTO, as the image's python:3.11 is built; a pyenv build without them serves about
# a quarter slower (docs/performance.md). VENV_PYTHON=python3 takes whatever python3 is instead.
VENV_PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3)
export PIPENV_PYTHON := $(VENV_PYTHON)
RUN := $(PIPENV) run
# pipenv itself, installed with pip the first time.
ENSURE_PIPENV := $(PYTHON) -m pipenv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet pipenv

# Tests and training look for the CSV in $CHURN_DATA; a checkout beside ../shared/data uses that.
SHARED_DATA := $(wildcard ../shared/data/WA_Fn-UseC_-Telco-Customer-Churn.csv)
ifeq ($(CHURN_DATA),)
ifneq ($(SHARED_DATA),)
export CHURN_DATA := $(abspath $(SHARED_DATA))
endif
endif

.PHONY: run test check lint train data env system-deps bench bench-batch bench-micro audit bench-spark emr-requirements docker-build docker-run \
	eb-init eb-local eb-create eb-deploy eb-status eb-open eb-setenv eb-https eb-https-settings eb-api-key eb-api-key-settings eb-predict eb-terminate
.DEFAULT_GOAL := help

help:
	@echo "make run    serve the model on :9696 (gunicorn, gunicorn.conf.py)"
	@echo "make test   lint and run the whole test suite"
	@echo "make check  lint and the quick tests (no Docker, Spark, browser, nginx, Prometheus)"
	@echo "make train  retrain model_C=1.0.bin from the Telco CSV"
	@echo "make bench  benchmark against the course's way (writes docs/benchmarks.md)"
	@echo "make bench-batch  batch scoring (score.py) against the course's way (docs/batch-benchmarks.md)"
	@echo "make bench-spark  Spark batch scoring against the tutorials' pandas UDF"
	@echo "make bench-micro  in-process microbenchmarks (pytest-benchmark)"

# The locked environment, rebuilt whenever Pipfile.lock changes: the service's packages, the
# developer tools, batch scoring (pyarrow) and Spark (pyspark, for the Spark engine's tests and
# benchmark). The service's own `pipenv install` and the image never take the last two.
.venv/.installed: Pipfile.lock
	@$(ENSURE_PIPENV)
	$(PIPENV) install --categories="packages dev-packages batch spark pkg-resources" --deploy
	@touch $@ .venv/.service

# What `make run` needs: the service and the course's client (requests, a dev package as in the
# course) and the eb CLI, without batch scoring's pyarrow and Spark's ~430 MB pyspark.
.venv/.service: Pipfile.lock
	@$(ENSURE_PIPENV)
	$(PIPENV) install --categories="packages dev-packages" --deploy
	@touch $@

env: .venv/.installed

run: .venv/.service
	$(RUN) gunicorn -c gunicorn.conf.py predict:app

data: env
	$(RUN) python -m churn.data

train: data
	$(RUN) python train.py

lint: env
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

# Debian packages the tests and benchmarks drive: wrk (load), nginx (scale-out test, and the EB
# instance's proxy), prometheus (with promtool: the monitoring/ rules and the end-to-end scrape test),
# chromium (browser tests), docker.io (the tests start their own private dockerd; nothing is
# started by installing it), mmdebstrap (a stand-in for the base image where Docker Hub
# cannot be reached), Java 17 (Spark in local mode) and postgresql (prediction capture: the
# tests start their own server in a temporary folder on a free port; the package's "main"
# cluster on 5432 is not created, see below). Installed with apt when missing (sudo unless
# root); apt waits for a lock another install holds instead of failing.
SYSTEM_DEPS := python3-venv wrk nginx-light chromium prometheus docker.io mmdebstrap openjdk-17-jre-headless \
	postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) mkdir -p /etc/postgresql-common/createcluster.d; \
	  echo "create_main_cluster = false" | \
	    $(SUDO) tee /etc/postgresql-common/createcluster.d/no-main-cluster.conf >/dev/null; \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing; \
	fi

test: lint data system-deps
	$(RUN) pytest

# The inner loop, under 2 minutes on 2 cores: lint, types and the tests that need no Docker,
# Spark, browser, nginx, Prometheus or PostgreSQL, and no long run under load (pytest markers,
# pyproject.toml). `make test` runs them all.
CHECK_TESTS := not (docker or spark or browser or nginx or prometheus or postgres or slow)
check: lint data
	$(RUN) pytest -m "$(CHECK_TESTS)"

bench: env system-deps
	$(RUN) python -m bench.run

audit: env
	$(PIPENV) requirements --dev > .venv/audit-requirements.txt
	$(RUN) pip-audit --strict --disable-pip --no-deps -r .venv/audit-requirements.txt

# score.py, Parquet to Parquet, against the course's chunked pandas way on 1M generated customers.
bench-batch: env
	$(RUN) python -m bench.batch

# score.py --engine spark against the tutorials' pandas UDF, in local[2] (README, Batch scoring).
bench-spark: env system-deps
	$(RUN) python -m bench.spark

# What score.py --engine spark imports on EMR Serverless beside Spark, computed from its imports
# by emr/packages.py, at the lock's versions and hashes: the input of emr/Dockerfile (docs/emr.md).
emr-requirements: env
	$(RUN) python emr/packages.py --output emr/requirements.txt

bench-micro: env
	$(RUN) pytest bench/test_micro.py --benchmark-only

# --- Docker and Elastic Beanstalk (need a Docker engine / AWS credentials on your machine) ---
IMAGE ?= churn-serving
APP ?= churn-serving
ENV ?= churn-serving-env
REGION ?= eu-west-1
EB := $(RUN) eb

docker-build:
	docker build -t $(IMAGE) .

docker-run:
	docker run -it --rm -p 9696:9696 $(IMAGE)

eb-init: env
	$(EB) init -p docker -r $(REGION) $(APP)

eb-local: env
	$(EB) local run --port 9696

# The HTTPS settings (eb-https) are for an Application Load Balancer, so ask for one explicitly.
eb-create: env
	$(EB) create $(ENV) --elb-type application

eb-deploy: env
	$(EB) deploy $(ENV)

eb-status: env
	$(EB) status $(ENV)

eb-open: env
	$(EB) open $(ENV)

# make eb-setenv VARS="CHURN_THRESHOLD=0.4 API_KEY=..."
eb-setenv: env
	$(EB) setenv $(VARS) -e $(ENV)

# HTTPS on the load balancer (README, Deploy): a listener on 443 with your certificate from ACM, and
# the plain-HTTP listener on 80 closed, so an API key never travels in clear (a redirect would
# come too late: the key has already been sent). make eb-https CERT_ARN=arn:aws:acm:...
# The settings go to a file under .elasticbeanstalk/ (git-ignored: the ARN names your account)
# and are applied with `eb config --update`, which sets them on the running environment.
# The listener's TLS policy is set, not left to the load balancer's default: TLS 1.3 and 1.2 only
# (ELB's predefined policies; docs/elastic-beanstalk.md).
CERT_ARN ?=
TLS_POLICY ?= ELBSecurityPolicy-TLS13-1-2-2021-06
EB_HTTPS_SETTINGS ?= .elasticbeanstalk/https-settings.yml
define HTTPS_SETTINGS
# Written by `make eb-https`; applied with `eb config ENV --update file://THIS_FILE`.
OptionSettings:
  aws:elbv2:listener:443:
    ListenerEnabled: "true"
    Protocol: HTTPS
    SSLCertificateArns: $(CERT_ARN)
    SSLPolicy: $(TLS_POLICY)
  aws:elbv2:listener:default:
    ListenerEnabled: "false"
endef

eb-https-settings:
	$(if $(filter arn:%,$(CERT_ARN)),,$(error usage: make eb-https CERT_ARN=arn:aws:acm:REGION:ACCOUNT:certificate/ID (your certificate from ACM)))
	$(shell mkdir -p $(dir $(EB_HTTPS_SETTINGS)))$(file > $(EB_HTTPS_SETTINGS),$(HTTPS_SETTINGS))
	@echo "HTTPS settings written to $(EB_HTTPS_SETTINGS)"

eb-https: env eb-https-settings
	$(EB) config $(ENV) --update "file://$(abspath $(EB_HTTPS_SETTINGS))"

# The API key from Secrets Manager or SSM Parameter Store (docs/elastic-beanstalk.md): EB reads it
# into API_KEY when an instance starts, and the environment's settings hold only its ARN.
# make eb-api-key SECRET_ARN=arn:aws:secretsmanager:... (or arn:aws:ssm:...:parameter/...)
SECRET_ARN ?=
EB_API_KEY_SETTINGS ?= .elasticbeanstalk/api-key-settings.yml
define API_KEY_SETTINGS
# Written by `make eb-api-key`; applied with `eb config ENV --update file://THIS_FILE`.
OptionSettings:
  aws:elasticbeanstalk:application:environmentsecrets:
    API_KEY: $(SECRET_ARN)
endef

eb-api-key-settings:
	$(if $(filter arn:aws:secretsmanager:% arn:aws:ssm:%,$(SECRET_ARN)),,$(error usage: make eb-api-key SECRET_ARN=arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME (or an SSM parameter's ARN)))
	$(shell mkdir -p $(dir $(EB_API_KEY_SETTINGS)))$(file > $(EB_API_KEY_SETTINGS),$(API_KEY_SETTINGS))
	@echo "API key settings written to $(EB_API_KEY_SETTINGS)"

eb-api-key: env eb-api-key-settings
	$(EB) config $(ENV) --update "file://$(abspath $(EB_API_KEY_SETTINGS))"

# The certificate names your domain, not the environment's *.elasticbeanstalk.com CNAME: with
# HTTPS on, point your domain at the CNAME and give it here (make eb-predict DOMAIN=...).
DOMAIN ?=
eb-predict: env
ifneq ($(DOMAIN),)
	$(RUN) python predict_test.py --url "https://$(DOMAIN)/predict"
else
	$(RUN) python predict_test.py --url "http://$$($(EB) status $(ENV) | awk '/CNAME/ {print $$2}')/predict"
endif

eb-terminate: env
	$(EB) terminate $(ENV)
