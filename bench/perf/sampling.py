"""Sampling as the checkpoints do it against HF's plain loop, on the default world's test prompts.

    python -m bench.perf.sampling               # 5 repeats, interleaved
    python -m bench.perf.sampling --repeat 9

Three ways, each repeat in a rotated order, from the reference policy on the checkpoint's test prompts (576, the
eval settings of the default config): ``plain`` (HF's concatenating key/value cache, every row run to the batch's
longest sample), ``in place`` (``bench.models.kv_cache``'s cache written in place) and ``in place, rows skipped``
(also ``bench.models.finished_rows``: finished samples leave the batch; what ``sampling.sample`` does). Printed:
each time, each way's ratio to plain per repeat (median, min - max), and whether all three gave the same samples,
token ids and log-probs bit for bit (they must).
"""
from __future__ import annotations

import argparse
import contextlib
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

    from bench.evaluation.core import generation_settings, render_prompts
    from bench.models import sampling
    from bench.perf import default_world_policy

    _, parts, data, policy, tok = default_world_policy()
    prompts = render_prompts(data.eval_prompts, tok)
    growing, skipping = sampling.growing_cache, sampling.skipping
    ways = {"plain": (lambda m, room: None, skipping),  # no cache of ours: HF's own, and nothing to skip with
            "in place": (growing, lambda *args: contextlib.nullcontext()),
            "in place, rows skipped": (growing, skipping)}

    def run(name):
        sampling.growing_cache, sampling.skipping = ways[name]
        t0 = time.perf_counter()
        try:
            out = sampling.sample(policy, tok, prompts, seed=0, **generation_settings(parts.eval))
        finally:
            sampling.growing_cache, sampling.skipping = growing, skipping
        return time.perf_counter() - t0, out

    names = list(ways)
    times, same = {k: [] for k in names}, True
    for r in range(a.repeat):
        got = {}
        for name in names[r % 3:] + names[: r % 3]:
            times[name].append((dt := run(name))[0])
            got[name] = dt[1]
        base = got["plain"]
        same &= all(x.texts == base.texts and x.completion_ids == base.completion_ids and torch.equal(x.logps, base.logps)
                    for x in got.values())
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in names), flush=True)
    print(f"{len(prompts)} prompts, medians: " + ", ".join(f"{k} {statistics.median(times[k]):.2f} s" for k in names))
    for k in names[1:]:
        ratios = [x / p for x, p in zip(times[k], times["plain"])]
        print(f"{k} / plain: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"same samples, token ids and log-probs: {same}")


if __name__ == "__main__":
    main()
