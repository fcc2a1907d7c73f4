"""Scoring fixed pairs as the checkpoints do against the plain way, on the default world's held-out pairs.

    python -m bench.perf.scoring               # 5 repeats, interleaved
    python -m bench.perf.scoring --repeat 9

One repeat scores the held-out pairs' chosen and rejected responses (what a checkpoint's implicit accuracy does,
and the margin probe on its training pairs) with the reference policy, in alternating order: ``sliced`` as
``sampling.sequence_logps`` does it (each batch in slices of about ``sampling.CPU_TOKENS`` tokens, logits only from
the first response token on) and ``whole`` (each batch in one pass, logits at every position). Printed: each time,
the ratio sliced / whole per repeat (median, min - max), and whether the two gave the same log-probs bit for bit
(they must).
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

    from bench.core.text import completion_text
    from bench.evaluation.core import render_prompts
    from bench.models import sampling
    from bench.perf import as_before, default_world_policy

    _, _, data, policy, tok = default_world_policy()
    pairs = data.eval_pairs
    prompts = render_prompts(pairs["prompt"], tok)
    sides = [[completion_text(r) for r in pairs[k]] for k in ("chosen", "rejected")]
    ways = {"sliced": contextlib.nullcontext, "whole": as_before}

    def run(name):
        t0 = time.perf_counter()
        with ways[name]():
            out = [sampling.sequence_logps(policy, tok, prompts, side) for side in sides]
        return time.perf_counter() - t0, out

    times, same = {k: [] for k in ways}, True
    for r in range(a.repeat):
        got = {}
        for name in (["sliced", "whole"] if r % 2 == 0 else ["whole", "sliced"]):
            times[name].append((dt := run(name))[0])
            got[name] = dt[1]
        same &= all(torch.equal(x, y) for x, y in zip(got["sliced"], got["whole"]))
        print(f"repeat {r + 1}: sliced {times['sliced'][-1]:.2f} s, whole {times['whole'][-1]:.2f} s", flush=True)
    ratios = [s / w for s, w in zip(times["sliced"], times["whole"])]
    print(f"{len(prompts)} pairs, {sampling.CPU_TOKENS} tokens a slice: sliced median {statistics.median(times['sliced']):.2f}"
          f" s, whole {statistics.median(times['whole']):.2f} s; ratio median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}); same log-probs: {same}")


if __name__ == "__main__":
    main()
