# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The local PostgreSQL the second test pass uses when it is reachable (trust auth on dev and CI machines).
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?= -n auto
# uvicorn with zero-copy file sends (audiocache/zerocopy.py; README "Streaming").
UVICORN_OPTIONS := --loop asyncio --http audiocache.delivery.zerocopy:HttpToolsProtocol

.PHONY: run test stress lint format system-deps system-deps-test serve clean

## make run: install what is missing, migrate, set up a demo on first run, serve on http://127.0.0.1:8000
run: system-deps $(VENV)/.runtime
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(PY) manage.py quickstart
	@echo "Serving on http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)  Ctrl+C stops."
	DEBUG=$${DEBUG:-true} exec $(VENV)/bin/uvicorn config.asgi:application $(UVICORN_OPTIONS) --host $(HOST) --port $(PORT)

## make test: lint, then the test suite on SQLite, then again on PostgreSQL when it is reachable
test: system-deps-test $(VENV)/.dev lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	@if $(PY) -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" "$(PG_TEST_URL)" 2>/dev/null; then \
		echo "PostgreSQL reachable: running the suite again with DATABASE_URL=$(PG_TEST_URL)"; \
		DATABASE_URL=$(PG_TEST_URL) $(VENV)/bin/pytest $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL not reachable at $(PG_TEST_URL): skipping the PostgreSQL pass"; \
	fi

## make stress: the load test (500 listeners at playback speed for 60 s while 50 tracks transcode); never part of make test
stress: system-deps-test $(VENV)/.dev
	STRESS=1 $(VENV)/bin/pytest -p no:cacheprovider -m stress -s tests/stress

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

system-deps:
	@PYTHON=$(PYTHON) scripts/install-system-deps.sh

system-deps-test:
	@PYTHON=$(PYTHON) scripts/install-system-deps.sh --test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
