"""Benchmarks (scripts, not tests): speed and memory measured as interleaved, repeated ratios with their spread."""


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
