# SPDX-License-Identifier: Apache-2.0
# The two set-up commands of README.md: `make run` and `make test`. Both create their own
# virtualenv in .venv and install everything the project needs from its own files.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv lint typecheck test test-unit run bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# Dependency groups (PEP 735) need pip 25.1 or newer.
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e '.[devcluster]' --group dev
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

# Lint, types, then every tier this machine can run. The Kubernetes binaries are built (once
# per machine, then cached) before pytest starts, so no test's timeout includes a Go build.
test: lint typecheck
	$(BIN)/python -m wio.devcluster build --if-possible
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

# A local control plane (unless KUBECONFIG names a cluster), the CRDs, wio itself and a sample
# WorkloadIdentity whose certificate is printed; runs until Ctrl-C.
run: venv
	$(BIN)/wio dev

# Benchmarks (not part of `make test`): about 55 minutes on two cores. BENCH_ARGS=--quick for
# short runs of the scale benchmarks with small sizes.
bench: venv
	$(BIN)/python -m wio.devcluster build
	$(BIN)/python bench/issuing.py
	$(BIN)/python bench/rotation.py $(BENCH_ARGS)
	$(BIN)/python bench/revocation.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .wio-dev
