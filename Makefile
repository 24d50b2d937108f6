# mlpipe: `make demo` runs the main job, `make test` installs everything and runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch is pinned and installed first: a looser range lets pip pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0
# Tests run on this many processes (pytest-xdist). A work unit stays on one process: the tests
# of one runner (its warm per-worker state), else one file (its module fixtures); the longest
# units start first (tests/support/markers.py). The suite mostly waits on orchestrator
# processes: 2 fit a 2-core machine.
TEST_WORKERS ?= 2

.PHONY: demo test test-fast lint typecheck install install-core bytecode clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Core only (enough for the demo and the local runner).
$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -c constraints.txt -e .
	touch $@

# Everything: all three orchestrators, W&B, the benchmark and the dev tools.
$(VENV)/.all: $(VENV)/.core
	$(PIP) install -q -c constraints.txt -e ".[all,dev]"
	touch $@

install-core: $(VENV)/.core
install: $(VENV)/.all

demo: install-core
	$(BIN)/mlpipe demo

lint: install
	$(BIN)/ruff check src tests bench dags examples scripts
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

# Byte-compile the checkout's own sources once: an editable install leaves them uncompiled, and
# where PYTHONDONTWRITEBYTECODE is set no process writes a .pyc, so each of the suite's many
# task and service processes would compile mlpipe again. A stale .pyc is only ever recompiled.
bytecode: install
	$(BIN)/python -m compileall -q src tests examples dags

# Every tier: unit, integration, runners, system (docs/testing.md).
test: lint bytecode
	$(BIN)/python -m pytest -q --timeout=900 -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=20

# The edit loop: unit + integration without the slow ones (fault kills, end-to-end trainings,
# benchmarks) and without any orchestrator, container or service; `make test` runs them all.
FAST := (unit or integration) and not slow and not (airflow or kubeflow or dagster)
test-fast: install bytecode
	$(BIN)/python -m pytest -q --timeout=300 -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "$(FAST)"

clean:
	rm -rf $(VENV) .mlpipe .pytest_cache .mypy_cache .ruff_cache

# The step image for cluster mode, with docker or podman (docker/build-image.sh; BASE_IMAGE,
# TORCH_INDEX, EXTRAS as build settings). Prints the image; reuses it if its inputs are unchanged.
.PHONY: image
image:
	PYTHON=$(PYTHON) docker/build-image.sh step
	PYTHON=$(PYTHON) docker/build-image.sh inference
