"""Shared reference log-probs: one reference pass per (data, reference model) serves every cell.

A label flip only swaps which response is chosen, so the reference log-probs of a pair's two responses do not
depend on the loss, the noise type or the rate. The first cell computes them with TRL's own precompute, stores
them in clean orientation (chosen = truly preferred) and every later cell re-orients them by its flip mask.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from datasets import Dataset

from bench.core.cache import DONE, get_or_build, stable_hash
from bench.training.trainer import REF_COLUMNS


class ReferenceLogpCache:
    def __init__(self, root: str | Path, key_parts: dict):
        self.root = Path(root)
        self.key = stable_hash(key_parts)

    def __call__(self, dataset: Dataset, compute: Callable[[Dataset], Dataset]) -> Dataset:
        flipped = np.asarray(dataset["is_flipped"] if "is_flipped" in dataset.column_names else [False] * len(dataset))

        def build(tmp: Path) -> None:
            done = compute(dataset)
            c, r = np.asarray(done[REF_COLUMNS[0]]), np.asarray(done[REF_COLUMNS[1]])
            # back to clean orientation, so any flip mask can be applied later
            np.save(tmp / "ref_logps.npy", np.stack([np.where(flipped, r, c), np.where(flipped, c, r)], axis=1))

        if _world_size() > 1 and not (self.root / "ref_logps" / self.key / DONE).exists():
            # a rank of a multi-GPU cell: TRL's precompute is collective, so it cannot run under this file lock
            return _precompute_across_ranks(self.root, self.key, dataset, compute, flipped)
        entry = get_or_build(self.root, "ref_logps", self.key, build)
        clean = np.load(entry / "ref_logps.npy")
        if len(clean) != len(dataset):
            raise RuntimeError(f"reference cache {entry} holds {len(clean)} pairs, the data has {len(dataset)}")
        chosen = np.where(flipped, clean[:, 1], clean[:, 0])
        rejected = np.where(flipped, clean[:, 0], clean[:, 1])
        return dataset.add_column(REF_COLUMNS[0], chosen.tolist()).add_column(REF_COLUMNS[1], rejected.tolist())


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _precompute_across_ranks(cache_root, key: str, dataset, compute, flipped):
    """Reference log-probs in a multi-GPU cell, stored in the shared cache by rank 0.

    Every rank takes part in TRL's precompute (it shards the batches and gathers the results). TRL 1.16 names the
    file its results go through after the dataset's own cache files; an in-memory dataset has none, so each rank
    would look for a different, random file name. The ranks therefore compute on one copy of the dataset saved to
    disk by rank 0, so that TRL's file has the same path for all of them; then every rank attaches the columns to
    its in-memory dataset, and rank 0 stores them (in clean orientation) and deletes the copy.
    """
    import shutil
    import uuid

    import torch.distributed as dist

    rank = dist.get_rank()
    token = [uuid.uuid4().hex[:12] if rank == 0 else None]
    dist.broadcast_object_list(token, src=0)
    shared = Path(cache_root) / "ref_logps" / f".{key}.ranks-{token[0]}"
    if rank == 0:
        dataset.save_to_disk(str(shared))
    dist.barrier()
    done = compute(Dataset.load_from_disk(str(shared)))
    c, r = np.asarray(done[REF_COLUMNS[0]]), np.asarray(done[REF_COLUMNS[1]])
    del done
    dist.barrier()  # every rank has its arrays in memory: the copy can go
    if rank == 0:
        clean = np.stack([np.where(flipped, r, c), np.where(flipped, c, r)], axis=1)
        get_or_build(cache_root, "ref_logps", key, lambda tmp: np.save(tmp / "ref_logps.npy", clean))
        shutil.rmtree(shared, ignore_errors=True)
    return dataset.add_column(REF_COLUMNS[0], c.tolist()).add_column(REF_COLUMNS[1], r.tolist())
