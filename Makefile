# The two commands of the README: `make run` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch comes first and pinned to the CPU wheel this machine serves locally, so that the
# project's unpinned `torch>=...` is already satisfied (otherwise pip fetches a CUDA build).
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: run test venv clean bench lint

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q ".[test,bench]"
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

run: $(STAMP)
	$(BIN)/python -m registry demo

bench: $(STAMP)
	$(BIN)/python bench/lookup.py --versions 100000 --evals 500000

clean:
	rm -rf build dist *.egg-info .pytest_cache
