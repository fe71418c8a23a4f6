# Two commands matter: `make run` (the main job, offline) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint clean live-local

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ampbench demo

test: $(STAMP)
	$(BIN)/ruff check harness suites tests scripts
	$(BIN)/ruff format --check harness suites tests scripts
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV)
