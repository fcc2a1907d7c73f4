"""``data=hf``: any preference dataset by hub name or local path (JSONL/JSON or Parquet), columns mapped in config.

Conversational rows (lists of ``{"role", "content"}`` messages, as in UltraFeedback-binarized) are split into a
prompt (the shared leading messages) and the two completions; plain rows without a prompt column (Anthropic HH
style transcripts) get their prompt extracted with TRL's ``extract_prompt``.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from datasets import Dataset

from bench.core.cache import stable_hash
from bench.data.base import REQUIRED, DataError, PreferenceData, validate
from bench.models import resolve_model_path


def read(path: str, split: str) -> Dataset:
    """The rows of a local .jsonl/.json/.parquet file or of a hub dataset; a ``DataError`` naming ``data.path``
    (and, for a malformed JSON file, the line) when they cannot be read."""
    from datasets import load_dataset

    p = Path(path)
    if p.suffix in (".jsonl", ".json", ".parquet"):
        if not p.is_file():
            raise DataError(f"data.path={path!r}: no such file; valid: an existing .jsonl, .json or .parquet file, "
                            "or a hub dataset name")
        try:
            with _libraries_silent():
                return load_dataset("parquet" if p.suffix == ".parquet" else "json", data_files=str(p), split="train")
        except Exception as e:  # noqa: BLE001 - datasets says only "An error occurred while generating the dataset"
            raise DataError(f"data.path={path!r}: {_unreadable(p, e)}") from e
    if p.exists():
        raise DataError(f"data.path={path!r}: unsupported file type {p.suffix!r}; valid: .jsonl, .json, .parquet")
    try:  # a hub name: works where the hub is reachable or the dataset is in the local HF cache
        with _libraries_silent():
            return load_dataset(path, split=split)
    except Exception as e:  # noqa: BLE001 - re-raised with the field named
        raise DataError(f"data.path={path!r}: not a local file and could not be loaded from the hub "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); valid: a local "
                        ".jsonl/.json/.parquet file, or a hub dataset that is reachable or in the local HF cache "
                        "(this machine may be offline: HF_DATASETS_OFFLINE)") from e


@contextmanager
def _libraries_silent():
    """No log lines from ``datasets`` or the hub client while reading (a failure is reported once, by us, with the
    field named; without this a malformed file or an unreachable hub also prints the libraries' own errors and
    every retry)."""
    loggers = [logging.getLogger(name) for name in ("datasets", "huggingface_hub")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _unreadable(p: Path, error: Exception) -> str:
    """What is wrong with a file ``datasets`` could not read: the first line that is not a JSON object (JSON
    Lines), the JSON parser's own position (a .json document), or the library's message (Parquet)."""
    import json

    if p.suffix == ".parquet":
        cause = error.__cause__ or error
        return f"not a readable Parquet file ({type(cause).__name__}: {cause}); valid: a Parquet file of rows"
    text = p.read_text(errors="replace")
    if p.suffix == ".json" and text.lstrip().startswith(("[", "{")):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            return f"line {e.lineno}: not valid JSON ({e.msg}, column {e.colno}); valid: a JSON document of rows"
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            return f"line {no}: not valid JSON ({e.msg}, column {e.colno}); valid: one JSON object per line"
        if not isinstance(row, dict):
            return f"line {no}: a JSON {type(row).__name__}, not an object; valid: one JSON object per line"
    cause = error.__cause__ or error
    return f"could not be read as JSON rows ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})"


def _split_conversation(chosen: list, rejected: list) -> tuple[list, list, list]:
    """Shared leading messages are the prompt; the rest of each conversation is its completion."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return chosen[:n], chosen[n:], rejected[n:]


def to_preference_form(ds: Dataset, columns: dict, keep: tuple[str, ...] = ()) -> Dataset:
    """The rows as prompt/chosen/rejected (and ``annotator``, and the ``keep`` columns where the file has them)."""
    kept = REQUIRED + ("annotator",) + tuple(keep)
    rename = {v: k for k, v in columns.items() if v and v != k and v in ds.column_names}
    ds = ds.rename_columns(rename) if rename else ds
    for col in ("chosen", "rejected"):
        if col not in ds.column_names:
            raise DataError(
                f"data: missing column {col!r} (mapped from data.columns.{col}={columns.get(col)!r}); "
                f"have {ds.column_names}"
            )
    first = ds[0]
    conversational = isinstance(first["chosen"], list)
    if conversational:
        def split(row):
            prompt, c, r = _split_conversation(row["chosen"], row["rejected"])
            if "prompt" in row and isinstance(row["prompt"], list) and row["prompt"]:
                prompt = row["prompt"]
            elif "prompt" in row and isinstance(row["prompt"], str) and not prompt:
                prompt = [{"role": "user", "content": row["prompt"]}]
            return {"prompt": prompt, "chosen": c, "rejected": r}

        return ds.map(split, remove_columns=[c for c in ds.column_names if c not in kept])
    if "prompt" not in ds.column_names:
        from trl.data_utils import extract_prompt

        ds = ds.map(extract_prompt)
    return ds.select_columns([c for c in ds.column_names if c in kept])


def load_hf(data, model, keep: tuple[str, ...] = ()) -> PreferenceData:
    """The pairs of ``data`` (``HFData``), whole prompts held out for evaluation; the reference policy of ``model``.
    ``keep``: columns of the file to carry beside the pairs (the annotators' votes ``noise=natural`` reads)."""

    ds = to_preference_form(read(data.path, data.split), dict(data.columns or {}), tuple(keep))
    validate(ds, f"data.path={data.path}")
    if data.max_pairs:
        ds = ds.select(range(min(len(ds), data.max_pairs)))
    # hold out whole prompts (not rows), deterministically by a hash of the prompt: [0, eval) evaluation (test),
    # [eval, eval + val) validation (model selection), the rest training
    u = [int(stable_hash(str(p), 8), 16) / 16**8 for p in ds["prompt"]]
    lo, hi = data.eval_fraction, data.eval_fraction + data.val_fraction
    train = ds.select([i for i, x in enumerate(u) if x >= hi])
    eval_pairs = ds.select([i for i, x in enumerate(u) if x < lo])
    val_pairs = ds.select([i for i, x in enumerate(u) if lo <= x < hi]) if data.val_fraction > 0 else None
    if len(train) == 0 or len(eval_pairs) == 0 or (val_pairs is not None and len(val_pairs) == 0):
        raise DataError(f"data.eval_fraction={lo} and data.val_fraction={data.val_fraction} leave an empty train, "
                         f"eval or validation split ({len(ds)} pairs)")
    train = train.add_column("pair_id", list(range(len(train))))
    prompts = _distinct(eval_pairs["prompt"])[: data.max_eval_prompts]
    return PreferenceData(
        name=data.name,
        task="general",
        train=train,
        eval_pairs=eval_pairs,
        eval_prompts=[p for p in prompts for _ in range(data.eval_samples_per_prompt)],
        model_path=resolve_model_path(model),
        fingerprint=stable_hash([data.path, train._fingerprint, len(train)]),
        val_pairs=val_pairs,
        val_prompts=_distinct(val_pairs["prompt"])[: data.max_eval_prompts] if val_pairs is not None else [],
    )


def _distinct(prompts) -> list:
    return list({stable_hash(p): p for p in prompts}.values())
