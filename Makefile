# Two commands: `make up` (a running stack) and `make test` (everything CI runs).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STACKCTL := $(BIN)/stackctl
# The real registry needs a GPU and an image registry; without them, the offline example.
CONFIG ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo config || echo examples/offline/config)

.PHONY: up down test unit integration install engine images bench lint

up: install engine
	@if [ "$(CONFIG)" = "examples/offline/config" ]; then $(STACKCTL) images build; fi
	$(STACKCTL) up -C $(CONFIG)

down: install
	$(STACKCTL) down -C $(CONFIG)

test: install engine images
	$(STACKCTL) validate -C config --strict
	$(STACKCTL) validate -C examples/offline/config --strict
	$(STACKCTL) generate -C config --check
	$(STACKCTL) generate -C examples/offline/config --check
	$(BIN)/ruff check stackctl tests benchmarks
	STACKCTL_NO_SKIP=1 STACKCTL_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install engine images
	STACKCTL_NO_SKIP=1 $(BIN)/python -m pytest tests/integration

$(BIN)/stackctl: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# An editable install compiles no bytecode; without it every command recompiles the modules
# it imports (~30 ms of each `stackctl switch` when Python may not write .pyc files itself).
install: $(BIN)/stackctl
	@$(BIN)/python -m compileall -q -x /contexts/ stackctl >/dev/null

engine:
	bash scripts/ensure-docker.sh
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

images: install engine
	$(STACKCTL) images build

bench: install engine images
	$(BIN)/python benchmarks/bench_cli_startup.py
	$(BIN)/python benchmarks/bench_up.py
	$(BIN)/python benchmarks/bench_switch.py
