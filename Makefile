# Two commands for a fresh machine: `make demo` and `make test`. Both install into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= agents,memory,serve,dev
# llama.cpp built for any x86-64 with AVX2, not for this CPU's newest instructions: a native
# build used AMX here, which this VM advertises but cannot run (Illegal instruction).
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: demo demo-events test lint bench scaling clean

$(BIN)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(BIN)/.installed-$(EXTRAS)
	mkdir -p results
	$(BIN)/edgeagents run --json results/run.json --plots results/plots --log results/decisions.jsonl
	@echo "Operator notices read by the LM: make demo-events (edgeagents run --scenario bristol-events)"

demo-events: $(BIN)/.installed-$(EXTRAS)
	mkdir -p results
	$(BIN)/edgeagents run --scenario bristol-events --decision-s 1 --json results/events.json \
		--log results/events.decisions.jsonl

test: $(BIN)/.installed-$(EXTRAS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

scaling: $(BIN)/.installed-$(EXTRAS)
	mkdir -p results
	$(BIN)/edgeagents bench scaling --json results/scaling.json

clean:
	rm -rf $(VENV) results .pytest_cache
