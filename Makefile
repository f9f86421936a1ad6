# Two commands for a fresh machine: `make demo` and `make test`. Both install into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev

.PHONY: demo test lint bench scaling clean

$(BIN)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(BIN)/.installed-$(EXTRAS)
	$(BIN)/edgeagents bench --json results/bench.json --plots results/plots

test: $(BIN)/.installed-$(EXTRAS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

scaling: $(BIN)/.installed-$(EXTRAS)
	$(BIN)/edgeagents bench scaling --json results/scaling.json

clean:
	rm -rf $(VENV) results .pytest_cache
