# The README's two commands: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast venv lint format bench worker beat notebook clean stack-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` needs the runtime requirements only; `make test` adds the test and lint tools.
$(RUNTIME_STAMP): $(BIN)/python requirements.txt
	@echo "Installing the runtime requirements into $(VENV) (the first time takes a few minutes) ..."
	$(BIN)/pip install --progress-bar on -r requirements.txt
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	@echo "Installing the test and lint tools into $(VENV) ..."
	$(BIN)/pip install --progress-bar on -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Plain log lines on a terminal; production (compose) keeps one JSON object per line.
# HOST and PORT choose where it listens: `make run PORT=8080`, `make run HOST=0.0.0.0`.
# gunicorn prints the landing page's, the admin's and the docs' URLs once it is serving.
run: export PENGUIN_LOG_FORMAT ?= text
run: $(RUNTIME_STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py bootstrap
	$(BIN)/gunicorn penguinsite.wsgi -c penguinsite/gunicorn.conf.py --bind $(HOST):$(PORT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	-$(BIN)/python -m tests.support.kserve_client  # the kserve SDK's own venv (var/), built once; if it cannot be, its test fails
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

# Jupyter Lab on training/notebooks/train.ipynb, with the same database and artifacts as
# `make run`; its last cell asks the service at HOST:PORT (start `make run` first).
$(VENV)/.installed-notebook: $(RUNTIME_STAMP) requirements-notebook.txt
	@echo "Installing Jupyter Lab into $(VENV) ..."
	$(BIN)/pip install --progress-bar on -r requirements-notebook.txt
	touch $@

notebook: $(VENV)/.installed-notebook
	PENGUIN_WEB_URL=http://$(HOST):$(PORT) $(BIN)/jupyter lab --ServerApp.root_dir=training/notebooks

worker: $(RUNTIME_STAMP)
	$(BIN)/celery -A penguinsite worker -l info

# Scheduled monitoring checks (every PENGUIN_MONITOR_INTERVAL seconds), run by a worker.
beat: $(RUNTIME_STAMP)
	$(BIN)/celery -A penguinsite beat -l info --schedule var/celerybeat-schedule

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/monitoring.py
	$(BIN)/python bench/log_table.py

# docker-compose.yml's own commands against the local PostgreSQL and Redis (DATABASE_URL,
# CELERY_BROKER_URL), then the README's tour over HTTP; part of `make test` too.
stack-check: $(STAMP)
	$(BIN)/python -m pytest tests/test_stack.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
