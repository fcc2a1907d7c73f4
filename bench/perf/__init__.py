"""Benchmarks (scripts, not tests): speed and memory measured as interleaved, repeated ratios with their spread."""
from __future__ import annotations

import contextlib


def default_world_policy(overrides: list[str] | None = None):
    """(config, parts, data, policy, tokenizer) of the default cell (with ``overrides``): its world loaded (built if need
    be), its reference policy on the CPU, torch on one thread as every benchmark here runs."""
    import torch

    torch.set_num_threads(1)
    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.models import load_causal_lm

    cfg = compose([*(overrides or []), "train.progress=false"])
    parts = build_parts(cfg)
    data = data_mod.load(parts.data, parts.model, cfg.paths.cache)
    policy, tok = load_causal_lm(data.model_path, "cpu")
    return cfg, parts, data, policy, tok


@contextlib.contextmanager
def as_before():
    """Evaluation as it was before finished samples left their batch (``bench.models.finished_rows``) and fixed
    pairs were scored in slices from the responses on (``sampling._scored``): every row to the batch's end, each
    batch in one pass with logits at every position. The benchmarks' baseline; the values are the same."""
    from bench.models import sampling

    was = sampling.skipping, sampling.CPU_TOKENS, sampling._keeps_logits
    sampling.skipping, sampling.CPU_TOKENS, sampling._keeps_logits = \
        (lambda *args: contextlib.nullcontext()), 10**9, (lambda m: False)
    try:
        yield
    finally:
        sampling.skipping, sampling.CPU_TOKENS, sampling._keeps_logits = was
