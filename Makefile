# Flywheel: `make run` and `make test` each set everything up on a fresh machine.
# Python 3.11+ is needed; override with `make run PYTHON=python3.12`.

PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
PYTEST_ARGS ?=
export VENV PORT PYTHON

# The stamp is newer than pyproject.toml once its dependencies are installed into $(VENV),
# so a second `make run` skips pip entirely.
STAMP := $(VENV)/.flywheel-installed

.PHONY: run test setup lint format worker clean

run: $(STAMP)
	@bash scripts/run_local.sh

test: $(STAMP)
	@bash scripts/test.sh $(PYTEST_ARGS)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .

$(STAMP): pyproject.toml
	@bash scripts/setup_venv.sh
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
