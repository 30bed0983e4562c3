# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv on first use (torch==2.13.0 CPU first, so pip never pulls a CUDA build),
# and are quick no-ops for set-up afterwards.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gnm-installed
TORCH := torch==2.13.0

.PHONY: demo test test-slow lint bench data clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
		|| $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev,prior]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gnm demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	@$(BIN)/gnm data mnist >/dev/null || echo "MNIST unavailable: tests marked mnist are skipped"
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/data_throughput.py

data: $(STAMP)
	$(BIN)/gnm data mnist

clean-venv:
	rm -rf $(VENV)
