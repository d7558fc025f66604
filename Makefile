# Two commands do all the set-up on a fresh machine:
#   make run   — install, migrate, load the demo, serve on http://127.0.0.1:5000
#   make test  — install and run the test suite (all but the slow tests: `make test-slow` runs those)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test test-slow install install-test serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What running needs (`make run`); the test extra (pytest, schemathesis, playwright) only for `make test`.
# Each has its stamp: installing the extra installs the app too, so it stamps both, and neither command
# reinstalls after the other unless setup.cfg or pyproject.toml changed.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/tsunagu db upgrade
	$(BIN)/tsunagu demo
	$(BIN)/tsunagu alerts scan
	$(BIN)/tsunagu serve --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# What `make test` leaves out: tests that start processes or servers, take a database down and up through
# the migrations, run the benchmark programs or drive Chromium. CI runs them on both stores.
test-slow: install-test
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/main_path.py
	$(BIN)/python bench/pages.py

clean:
	rm -rf $(VENV) *.egg-info build .pytest_cache .hypothesis test-output
