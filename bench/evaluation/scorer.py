"""Per-response scores as an input to training: ``scorer=proxy | oracle | rm`` (``none``: the default).

A scorer is a reward model that gives every response of the training pairs one score, once per data set, cached
(``<cache>/scores/<key>/``, the key holding exactly what changes the scores: the reward model and the data). The
scores become two columns, ``score_chosen`` and ``score_rejected``, added to the *clean* pairs before the noise:
the injector swaps every ``*_chosen``/``*_rejected`` column pair of a flipped row, so a flipped pair's score
margin ``score_chosen - score_rejected`` flips with its label, and a loss takes it at batch time
(``bench.losses.base.score_margin``). Kinds:

    proxy   realistic: the embedded reward model trained on the world's reward-model split with labels noised by
            the cell's own injector configuration (its own mask, seed + ``RM_SEED``), the validation proxy's model
    oracle  the embedded reward model trained on the clean reward-model split: an upper bound, labelled so
    rm      any sequence-classification reward model with one output logit (``scorer.rm.path``), on any data

A scorer is only used, and only part of a cell's identity, when something reads scores (``reads_scores``): a loss
with ``needs_scores`` or a method with ``needs_scores``. Its reward model comes from the one ``bench.rewards.load``.
The record's ``scorer`` field says which one it was, how it was trained and how often it agrees with the training
pairs' clean labels (a diagnostic after the fact).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cache import get_or_build, stable_hash
from bench.core.detection import auroc
from bench.core.text import completion_text, prompt_text
from bench.evaluation.scorer_config import KINDS, SCORE_COLUMNS, WHERE, ScorerConfig, check, check_needed, reads_scores  # noqa: F401  (part of this module's API)
from bench.evaluation.validation import proxy_reward_model
from bench.rewards.load import World, load

SCORES_VERSION = 1  # bump when what a scorer computes for a response changes


class Scorer:
    """A loaded scorer: ``score(prompts, responses)`` and what the record says about it."""

    def __init__(self, name: str, model, key: str, info: dict):
        self.name, self.model, self.key, self.info = name, model, key, info

    def score(self, prompts: list, responses: list) -> np.ndarray:
        return self.model.score([prompt_text(p) for p in prompts], [completion_text(r) for r in responses])


# ------------------------------------------------------------------------------------------- loading and scoring
def load_scorer(cfg: ScorerConfig, data, noise_node: dict, seed: int, cache_root: str | None) -> Scorer:
    """The cell's scorer: its reward model (trained and cached on first use), its cache key and its record."""
    rm = cfg.rm
    if cfg.name == "rm":
        model = load(rm, WHERE, cache_root).model
        key = stable_hash({"path": str(rm.path), "files": _folder_digest(Path(str(rm.path)).expanduser()),
                           "max_length": rm.max_length, "template": str(rm.chat_template)})
        return Scorer("rm", model, key, {"name": "rm", "kind": KINDS["rm"], "path": str(rm.path)})
    if cfg.name == "proxy":
        model, meta = proxy_reward_model(data, rm, noise_node, seed, cache_root, where=WHERE)
    else:
        world_dir = Path(data.world_dir)
        loaded = load(rm, WHERE, cache_root if cache_root is not None else str(world_dir.parents[1]), World(world_dir))
        model, meta = loaded.model, {**loaded.meta, "folder": str(loaded.folder)}
    info = {"name": cfg.name, "kind": KINDS[cfg.name], "rm_key": Path(meta["folder"]).name,
            "rm_labels": meta.get("labels"), "rm_gold_accuracy": meta.get("gold_accuracy"),
            "rm_train_pairs": meta.get("n_train_pairs")}
    return Scorer(cfg.name, model, stable_hash({"rm": info["rm_key"], "max_length": rm.max_length}), info)


def _folder_digest(folder: Path) -> dict:
    if not folder.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def add_scores(ds, scorer: Scorer, data_fingerprint: str, cache_root: str | None):
    """``ds`` (clean pairs) with ``score_chosen``/``score_rejected``, each response scored once and cached."""
    key = stable_hash({"v": SCORES_VERSION, "scorer": scorer.key, "data": data_fingerprint, "n": len(ds)})

    def build(tmp: Path) -> None:
        n = len(ds)
        prompts = list(ds["prompt"])
        s = scorer.score(prompts + prompts, list(ds["chosen"]) + list(ds["rejected"]))
        np.save(tmp / "scores.npy", np.stack([s[:n], s[n:]], axis=1))

    if cache_root is None:
        cache_root = tempfile.mkdtemp(prefix="prefnoise-scores-")
    scores = np.load(get_or_build(cache_root, "scores", key, build) / "scores.npy")
    if len(scores) != len(ds):
        raise RuntimeError(f"score cache {key} holds {len(scores)} pairs, the data has {len(ds)}")
    for col, j in zip(SCORE_COLUMNS, (0, 1)):
        if col in ds.column_names:
            ds = ds.remove_columns(col)
        ds = ds.add_column(col, scores[:, j].astype(np.float64).tolist())
    return ds


def agreement(noisy) -> dict[str, Any]:
    """How often the scorer's margin agrees with the training pairs' labels: as observed, and (after the fact, via
    the flip mask) with the clean labels; and how well it separates the flipped pairs (AUROC of -margin)."""
    m = np.asarray(noisy[SCORE_COLUMNS[0]], dtype=float) - np.asarray(noisy[SCORE_COLUMNS[1]], dtype=float)
    out = {"agrees_observed": float(np.mean(m > 0))}
    if "is_flipped" in noisy.column_names:
        flipped = np.asarray(noisy["is_flipped"], dtype=bool)
        out["agrees_clean"] = float(np.mean(np.where(flipped, m < 0, m > 0)))
        a = auroc(-m, flipped)  # the scorer as a flip detector (bench.core.detection)
        if a is not None:
            out["flip_auroc"] = a
    return out
