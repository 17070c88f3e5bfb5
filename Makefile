# Two commands do all set-up on a fresh machine: `make bench` (the benchmark suite's quick mode and its report) and
# `make test`. Each creates the virtual environment it needs with pip.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: test bench bench-full foresight
test: $(VENV)/.installed
	$(PY) -m pytest tests/ -q

bench: $(VENV)/.installed
	$(PY) -m pytest benchmarks/ -q --benchmark-quiet --benchmark-json=benchmarks/results/benchmark.json
	$(PY) -m benchmarks.report benchmarks/results/benchmark.json

bench-full: $(VENV)/.installed
	EFFOPT_BENCH_MODE=full $(PY) -m pytest benchmarks/ -q --benchmark-quiet --benchmark-json=benchmarks/results/benchmark-full.json
	$(PY) -m benchmarks.report benchmarks/results/benchmark-full.json

foresight: $(VENV)/.installed
	$(PY) -m benchmarks.foresight
