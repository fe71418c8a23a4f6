# Two commands matter: `make run` (the main job, offline) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all test-containers test-cluster clean live-local local-model-start local-model-stop

# editable_mode=compat makes the editable install one path line in a .pth file. The default
# mode's import hook costs every Python start in the venv 16 ms, and `make run` starts ~180
# (agent commands and test runs); should setuptools drop the mode, the default one is used.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat 2>/dev/null \
		|| $(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ampbench demo

test: $(STAMP)
	$(BIN)/ruff check harness suites tests scripts
	$(BIN)/ruff format --check harness suites tests scripts
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# Real SWE-bench instances in containers (marked `containers`): needs Docker or Podman, and
# root with debootstrap for the base images (built once, then cached by the engine).
test-containers: $(STAMP)
	$(BIN)/pytest -q -m containers

# `--executor ray` on a two-node Ray cluster started on loopback (marked `cluster`, ~1.5 min).
test-cluster: $(STAMP)
	$(BIN)/pytest -q -m cluster

# Slow tests too (marked `slow`); the default run keeps them out. The opt-in
# live_local and claude_code tests need `make local-model-start` / a `claude` binary.
test-all: $(STAMP)
	$(BIN)/pytest -q -m 'not live_local and not claude_code'

# Opt-in, not in CI: build llama.cpp's server, serve SmolLM2-135M on loopback and
# run the snitch suite against that real model, recording its cassettes.
live-local: $(STAMP) local-model-start
	$(BIN)/ampbench run --suite snitch --model "compat:SmolLM2-135M-Instruct@http://127.0.0.1:8089/v1" \
		--repeats 1 --concurrency 1 --max-tokens 512 --cassettes auto --cassette-dir results/live-local-cassettes
	scripts/local_model.sh stop

local-model-start:
	scripts/local_model.sh start

local-model-stop:
	scripts/local_model.sh stop

clean:
	rm -rf $(VENV)
