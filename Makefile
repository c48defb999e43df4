# `make run` and `make test` work on a fresh machine: both create .venv when needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak clean

# setuptools' warnings from the editable build say nothing a user can act on; LOG_LEVEL=debug shows them.
INSTALL_ENV := $(if $(filter debug,$(LOG_LEVEL)),,PYTHONWARNINGS=ignore)

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(INSTALL_ENV) $(VENV)/bin/pip install --quiet --upgrade pip
	$(INSTALL_ENV) $(VENV)/bin/pip install --quiet -e '.[dev]' -e ./client
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/epochly-serve

# Lint, format and types first: they take seconds and fail before the suite's minutes.
LINTED := app worker client migrations

test: $(STAMP) lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python -m bench.run_all

soak: $(STAMP)
	$(VENV)/bin/python -m bench.soak

clean:
	rm -rf $(VENV) var
