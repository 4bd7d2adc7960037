# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make run   -> virtualenv, install what running needs, one replica on the embedded default
#   make test  -> the test and bench extras too, then the whole suite (installs Chromium for
#                 the browser tests when missing)
# Each install has its own stamp, so `make test` after `make run` still installs the extras.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP  := $(VENV)/.installed

.PHONY: run test soak lint format bench clean browser

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/datagems replica

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# the long forms of the fault tests: 30 s store outage, kill -9 at 20 moments
soak: $(STAMP)
	DATAGEMS_SOAK=1 $(BIN)/pytest tests/actors/test_faults.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/datagems bench

clean:
	rm -rf $(VENV) .datagems tests/artifacts .pytest_cache
