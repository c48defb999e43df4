# `make run` and `make test` work on a fresh machine: both create .venv when needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak clean wheelhouse test-docker

# setuptools' warnings from the editable build say nothing a user can act on; LOG_LEVEL=debug shows them.
INSTALL_ENV := $(if $(filter debug,$(LOG_LEVEL)),,PYTHONWARNINGS=ignore)

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(INSTALL_ENV) $(VENV)/bin/pip install --quiet --upgrade pip
	$(INSTALL_ENV) $(VENV)/bin/pip install --quiet -e '.[dev]' -e ./client
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/epochly-serve

# Lint, format and types first: they take seconds and fail before the suite's minutes. The tests and
# benchmarks are linted too, but keep their own formatting and go unchecked by mypy.
LINTED := app worker client migrations

test: $(STAMP) lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED) tests bench
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python -m bench.run_all

soak: $(STAMP)
	$(VENV)/bin/python -m bench.soak

# Wheels for everything the Docker image installs: the server's and the client's dependencies and
# setuptools to build both. With them in wheels/, `docker build` reaches no package index. Built by
# this venv's Python, so they fit the image's (3.11) only when this one is 3.11 too; async-timeout is
# what redis needs on a Python before 3.11.3 (Debian 12 has 3.11.2), which a newer 3.11 here leaves out.
# The project's own two wheels are dropped: the image builds them from the source it copies, and a
# copy here, changing with every edit, would make Docker reinstall the unchanged dependencies.
wheelhouse: $(STAMP)
	$(INSTALL_ENV) $(VENV)/bin/pip wheel --quiet --wheel-dir wheels --find-links wheels . ./client setuptools wheel async-timeout
	rm -f wheels/epochly-*.whl wheels/epochly_client-*.whl

# Not part of `make test`: builds the images and runs the compose stack on a Docker engine (installed
# and started if missing); see docker/test-docker.sh.
test-docker: wheelhouse
	docker/test-docker.sh

clean:
	rm -rf $(VENV) var
