# Two commands: `make up` (a running stack) and `make test` (everything CI runs).
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

.PHONY: up down test test-fast unit integration install engine images bench

up: install engine
	@if [ "$(CONFIG)" = "examples/offline/config" ]; then $(STACKCTL) images build; fi
	@$(STEP) "starting the stack ($(CONFIG))" --tee --log $(LOGS)/up.log -- $(STACKCTL) up -C $(CONFIG)

down: install
	$(STACKCTL) down -C $(CONFIG)

test: install engine images
	@$(STEP) "validate + generate --check: config" --log $(LOGS)/check-config.log -- bash -c \
	  '$(STACKCTL) validate -C config --strict && $(STACKCTL) generate -C config --check'
	@$(STEP) "validate + generate --check: examples/offline/config" --log $(LOGS)/check-offline.log -- bash -c \
	  '$(STACKCTL) validate -C examples/offline/config --strict && $(STACKCTL) generate -C examples/offline/config --check'
	@$(STEP) "ruff" --log $(LOGS)/ruff.log -- $(BIN)/ruff check stackctl tests benchmarks scripts
	@$(call streams,tests/contract,unit)

# pytest runs as three processes at once. They share no container, network, compose project
# or host port, and two of them mostly wait on containers (a stack's health, a Swarm node):
#   1. the integration modules that use the shared offline stack (see
#      tests/integration/conftest.py), shown as they run;
#   2. the integration modules with containers of their own and the 3-node test Swarm
#      ($(APART)), then the contract tests, then $(APART_LAST);
#   3. everything else: the unit tests (`streams` with `unit` as its second argument).
# 2 and 3 write to $(LOGS)/pytest-{apart,unit}.log, printed when all are done; any failing
# fails the target. A new integration module joins 1 unless it is added to APART.
# The tests with the tightest time windows (the contract tests' held requests, the sleep
# switches) come last in 2: by then the unit tests no longer keep both cores busy.
PYTEST = STACKCTL_NO_SKIP=1 STACKCTL_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -p no:cacheprovider
APART := tests/integration/test_images.py tests/integration/test_plain_compose.py \
  tests/integration/test_swarm_cluster.py tests/integration/test_swarm.py
APART_LAST := tests/integration/test_sleep_switch.py
define streams
mkdir -p $(LOGS); \
$(PYTEST) $(APART) $(1) $(APART_LAST) >$(LOGS)/pytest-apart.log 2>&1 & apart=$$!; \
$(if $(2),$(PYTEST) tests --ignore=tests/integration --ignore=tests/contract \
  >$(LOGS)/pytest-unit.log 2>&1 & unit=$$!;,: >$(LOGS)/pytest-unit.log; unit=;) \
echo "pytest $(APART) $(1) $(APART_LAST) and $(if $(2),the unit tests,nothing else) run" \
  "beside this one (logs: $(LOGS)/pytest-apart.log, $(LOGS)/pytest-unit.log)"; \
$(PYTEST) tests/integration $(APART:%=--ignore=%) $(APART_LAST:%=--ignore=%); main=$$?; \
wait $$apart; a=$$?; u=0; if [ -n "$$unit" ]; then wait $$unit; u=$$?; fi; \
for log in apart unit; do echo "=== $(LOGS)/pytest-$$log.log ==="; cat $(LOGS)/pytest-$$log.log; done; \
echo "pytest exit codes: shared stack $$main, apart $$a, unit $$u"; \
test $$main -eq 0 && test $$a -eq 0 && test $$u -eq 0
endef

# Unit + contract tests, spread over $(WORKERS) pytest-xdist workers (a contract module stays on one
# worker: its containers start once). Same skip rules as `make test`; no lint, no integration.
WORKERS ?= auto
test-fast: install engine images
	STACKCTL_NO_SKIP=1 STACKCTL_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -p no:cacheprovider \
	  -n $(WORKERS) --dist loadgroup tests/unit tests/contract

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install engine images
	@$(call streams,,)

$(BIN)/stackctl: pyproject.toml
	@$(STEP) "install: venv $(VENV) + pip install -e '.[dev]'" --log $(LOGS)/install.log -- bash -c \
	  'set -e; test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	   $(BIN)/pip install --upgrade pip; $(BIN)/pip install -e ".[dev]"'
	@touch $@

# An editable install compiles no bytecode; without it every command recompiles the modules
# it imports (~30 ms of each `stackctl switch` when Python may not write .pyc files itself).
install: $(BIN)/stackctl
	@$(BIN)/python -m compileall -q -x /contexts/ stackctl >/dev/null

engine:
	@$(STEP) "docker engine" --detail '[ensure-docker] ' --log $(LOGS)/engine.log -- bash scripts/ensure-docker.sh
	@command -v promtool >/dev/null || $(STEP) "promtool (apt-get install prometheus)" --log $(LOGS)/promtool.log -- \
	  bash -c 'apt-get -o DPkg::Lock::Timeout=600 update && DEBIAN_FRONTEND=noninteractive \
	    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends prometheus'
	@command -v kubectl >/dev/null || $(STEP) "kubectl (apt-get install kubernetes-client)" --log $(LOGS)/kubectl.log -- \
	  bash -c 'apt-get -o DPkg::Lock::Timeout=600 update && DEBIAN_FRONTEND=noninteractive \
	    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends kubernetes-client'

images: install engine
	@$(STACKCTL) images build

bench: install engine images
	@command -v wrk >/dev/null || $(STEP) "wrk (apt-get install wrk)" --log $(LOGS)/wrk.log -- \
	  bash -c 'apt-get -o DPkg::Lock::Timeout=600 update && apt-get -o DPkg::Lock::Timeout=600 install -y wrk'
	$(BIN)/python benchmarks/bench_cli_startup.py
	$(BIN)/python benchmarks/bench_up.py
	$(BIN)/python benchmarks/bench_switch.py
	$(BIN)/python benchmarks/bench_reload.py
	$(BIN)/python benchmarks/bench_gateway.py
