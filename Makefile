# The README's two commands: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast venv lint format bench worker clean stack-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Plain log lines on a terminal; production (compose) keeps one JSON object per line.
run: export PENGUIN_LOG_FORMAT ?= text
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py bootstrap
	$(BIN)/gunicorn penguinsite.wsgi -c penguinsite/gunicorn.conf.py --bind $(HOST):$(PORT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

# The edit loop: everything but the tests marked slow (live stacks, workers, load).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --durations=15 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: $(STAMP)
	$(BIN)/celery -A penguinsite worker -l info

bench: $(STAMP)
	$(BIN)/python bench/run.py

# docker-compose.yml's own commands against the local PostgreSQL and Redis (DATABASE_URL,
# CELERY_BROKER_URL), then the README's tour over HTTP; part of `make test` too.
stack-check: $(STAMP)
	$(BIN)/python -m pytest tests/test_stack.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
