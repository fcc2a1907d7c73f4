"""Sampling with the in-place key/value cache against HF's concatenating one, on the default world's test prompts.

    python -m bench.perf.sampling               # 5 repeats, interleaved
    python -m bench.perf.sampling --repeat 9

One repeat samples the checkpoint's test prompts (576, the eval settings of the default config) once with each
cache, in alternating order, from the reference policy. Printed: each time, the ratio in-place / plain per repeat
(median, min - max), and whether the two gave the same samples and log-probs bit for bit (they must).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.evaluation.core import generation_settings, render_prompts
    from bench.models import load_causal_lm, sampling

    cfg = compose(["train.progress=false"])
    parts = build_parts(cfg)
    data = data_mod.load(parts.data, parts.model, cfg.paths.cache)
    policy, tok = load_causal_lm(data.model_path, "cpu")
    prompts = render_prompts(data.eval_prompts, tok)
    caches = {"in place": sampling.growing_cache, "plain": lambda m, room: None}  # None: HF's own cache

    def run(name):
        sampling.growing_cache = caches[name]
        t0 = time.perf_counter()
        out = sampling.sample(policy, tok, prompts, seed=0, **generation_settings(parts.eval))
        return time.perf_counter() - t0, out

    times, same = {k: [] for k in caches}, True
    for r in range(a.repeat):
        got = {}
        for name in (["in place", "plain"] if r % 2 == 0 else ["plain", "in place"]):
            times[name].append((dt := run(name))[0])
            got[name] = dt[1]
        x, y = got["in place"], got["plain"]
        same &= x.texts == y.texts and torch.equal(x.logps, y.logps)
        print(f"repeat {r + 1}: in place {times['in place'][-1]:.2f} s, plain {times['plain'][-1]:.2f} s", flush=True)
    sampling.growing_cache = caches["in place"]
    ratios = [i / p for i, p in zip(times["in place"], times["plain"])]
    print(f"{len(prompts)} prompts: in place median {statistics.median(times['in place']):.2f} s, plain "
          f"{statistics.median(times['plain']):.2f} s; ratio median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}); same samples and log-probs: {same}")


if __name__ == "__main__":
    main()
