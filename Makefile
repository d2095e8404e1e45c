# reslab: `make demo` (environment, data, the default sweep, its report) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# torch is pinned here, before anything that depends on it, so pip never picks another build by itself.
# On the project's CPU machines pip finds a local CPU wheel of this version. Elsewhere, choose the build with
# TORCH_PIP_ARGS (e.g. --index-url <your CPU or CUDA wheel index>) or another TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DATA_DIR ?= data
SWEEP ?= depth=20,56,110 model=plain,residual

BIN := $(VENV)/bin
# Re-install when the torch choice or the install mode changes.
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC) $(TORCH_PIP_ARGS) editable-compat' | cksum | cut -d' ' -f1)

BENCH_ARGS ?=

.PHONY: help venv install data demo sweep bench bench-job bench-share lint test test-slow test-all clean

help:
	@echo "make demo      environment, data, the default sweep ($(SWEEP)), report"
	@echo "make test      environment and the quick test tier (unit tests and a few smoke runs)"
	@echo "make lint      ruff check and ruff format --check (as CI runs them)"
	@echo "make test-slow the slow tier alone (what make test-all adds; a real SLURM cluster as root)"
	@echo "make test-all  the whole suite, on TEST_WORKERS=2 processes"
	@echo "make bench     throughput of reslab vs a plain PyTorch loop (writes bench.json)"
	@echo "make bench-job       the paper's ResNet-56 schedule as one whole job, launch to exit (writes bench.json)"
	@echo "make bench-share     the Fig. 6 sweep in series and 4 jobs at a time, and the speed-up (writes bench.json)"
	@echo "               BENCH_ARGS passes options and overrides to the bench targets, e.g."
	@echo "               BENCH_ARGS=\"--project-steps 64000 -- trainer.max_steps=2000\" (reslab bench --help)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# editable_mode=compat: src/ on the path, so Hydra's plugin scan finds src/hydra_plugins (reslab's launchers); the
# default editable mode hides a namespace package from that scan.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]" --config-settings editable_mode=compat
	touch $(STAMP)

venv install: $(STAMP)

# Fashion-MNIST, offline from Debian's package where apt is available; otherwise reslab downloads it into
# $(DATA_DIR) on first use (needs a network).
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -f $(DATA_DIR)/fashion_mnist/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST is present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist) \
			|| echo "apt-get could not install dataset-fashion-mnist; reslab will download it into $(DATA_DIR)/fashion_mnist"; \
	else \
		echo "Fashion-MNIST not installed; reslab will download it into $(DATA_DIR)/fashion_mnist on first use"; \
	fi

sweep: install data
	$(BIN)/reslab -m $(SWEEP) data_dir=$(DATA_DIR)

demo: sweep

bench: install data
	$(BIN)/reslab bench $(BENCH_ARGS)

# Whole jobs, as a user runs them; the device's name and theoretical peak are printed beside the figures.
bench-job: install data
	$(BIN)/reslab bench --mode job $(BENCH_ARGS)

bench-share: install data
	$(BIN)/reslab bench --mode share $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The quick tier, after every edit: unit tests and a few smoke runs (pyproject's addopts leave out `slow`), on
# TEST_WORKERS processes (pytest-xdist; the workers share one tiny sweep: tests/conftest.py).
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS)
test: install
	$(BIN)/python -m pytest -q $(XDIST)

# The rest: on TEST_WORKERS processes (pytest-xdist), then the real SLURM cluster's tests alone. Run beside the rest
# they took 1188-1436 s instead of 746 s and the whole was no faster (1247 s and 1504 s against 1441 s), so they run
# after it, with the cores to themselves (experiments/test_tiers/).
SLURM_TESTS = tests/test_slurm_cluster.py
test-slow: install
	$(BIN)/python -m pytest -q -m slow $(XDIST) --ignore=$(SLURM_TESTS)
	$(BIN)/python -m pytest -q -m slow $(SLURM_TESTS)

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow" $(XDIST) --ignore=$(SLURM_TESTS)
	$(BIN)/python -m pytest -q -m slow $(SLURM_TESTS)

clean:
	rm -rf $(VENV) outputs multirun
