"""ROPO's full method (``method=ropo_full``): rounds of ROPO-loss training, loss-based noise filtering between
rounds, and robustness-guided rejection sampling (RGRS) of replacement pairs for the dropped prompts.

Source: Liang et al., "ROPO: Robust Preference Optimization for Large Language Models", arXiv 2404.04102, ICML
2025 (Algorithm 1, appendix A). The paper has no official code. Its text was not reachable from this project's
machines when this was written, so what follows implements the method as the paper's abstract and
``docs/losses.md`` describe it (an iterative alignment that alternates noise-tolerant training with
the robust loss and filtering of the highest-loss, most uncertain pairs, and replaces the discarded queries' data
with new responses chosen by rejection sampling guided by the robust loss), and states every choice below. Check
them against the paper before quoting a figure as "the paper's method".

What one cell does (``RopoFull.train``; each step is a function in ``filter`` / ``candidates``)::

    D_1 = the noisy training pairs (reference log-probs from TRL's precompute / the shared cache)
    for t = 1 .. R:
        train the policy on D_t with the ROPO loss           (one PreferenceTrainer: the standard trainer path)
        if t < R:
            l_i = ROPO loss of every ORIGINAL pair i under the current policy pi_t
            drop the k = round(drop_fraction * N) pairs with the highest l_i  (w-step)
            for each dropped prompt x: sample n_candidates responses from pi_t, pick the pair (y_w, y_l) with the
                lowest ROPO loss under pi_t, keep it if that loss is at most the filter's cut   (RGRS)
            D_{t+1} = kept original pairs + accepted replacement pairs

Choices (none checked against the paper's text; "open" marks the ones its abstract does not settle):

1. **Filtering is the w-step of the paper's constrained problem.** The paper writes training with noise
   reduction as minimizing a weighted loss ``sum_i w_i l_i`` with the weights' sum constrained to the number of
   pairs to keep, solved by alternating between the policy and the weights. With 0/1 weights the w-step keeps the
   ``N - k`` lowest-loss pairs. So each filter re-ranks *all N original pairs* under the current policy: a pair
   dropped after round t can come back after round t+1 if its loss fell (open: a cumulative filter is the other
   reading). Replacement pairs are not ranked: they are regenerated after every round for the currently dropped
   prompts (they carry no label of the original data, so they have no place in the filter's precision).
2. **How many.** ``k = round(drop_fraction * N)`` (halves up) every round, of the original pairs that TRL kept
   (it drops pairs whose prompt alone fills ``train.max_length``). ``drop_fraction`` 0.2 (open: the proportion
   recalled from the paper's setup, not checked against its text; it is a config value).
3. **Rounds and budget (open).** ``rounds`` 3, filtering between rounds (``rounds - 1`` filters; none after
   the last round, whose filter would change nothing). ``budget: matched`` splits the cell's training budget
   (``train.max_steps``, else ``train.epochs`` passes over the initial data, as TRL counts steps) evenly over
   the rounds and runs one optimizer and one learning-rate schedule (warmup, decay) across them, so the full
   method takes exactly as many optimizer steps as ``method=standard`` and its learning rate follows the same
   curve; only the data changes between rounds. ``budget: per_round`` gives every round the whole budget
   (closer to "an iteration is a pass over the data"; R times the compute). Round t shuffles its data with
   ``data_seed = seed + t - 1`` (round 1's order is the standard cell's). A round shorter than one pass over the
   pairs (``train.epochs: 1`` over 3 rounds) leaves some pairs never trained on, about 30% there; the cell warns.
4. **The loss used to filter and to choose is the training loss** (``loss=ropo``: the paper's robust loss,
   whose bounded gradient for confidently "wrong" pairs is what makes flipped pairs stand out with high loss).
   With another loss the cell fails unless ``method.allow_other_loss=true`` (then it warns and labels the result
   "ROPO full method (<loss>)"): an ablation, not the paper's method. Batch-level losses (Dr. DPO) cannot rank
   pairs and always fail.
5. **Robustness-guided rejection sampling.** For a dropped prompt x, ``n_candidates`` responses are sampled
   from the current policy (temperature/top_p from config, ``max_new_tokens`` = the world's pair length);
   duplicates and empty responses are removed; with ``include_original: true`` the dropped pair's own two
   responses join the candidates (open; off by default: the issue asks for new responses, and re-ranking the
   original two would be label correction rather than replacement). Each candidate's implicit reward is the
   loss's own ``r(y) = beta [log pi_t(y|x) - log pi_ref(y|x)]``. Among all ordered pairs of distinct candidates
   the one with the lowest ROPO loss is chosen; ROPO's loss falls strictly with the margin, so this is
   (chosen = highest implicit reward, rejected = lowest): the pair the current policy is most confident about.
   The rejection step (``accept: below_cut``, open): the pair is kept only if its loss is at most the filter's
   cut this round (the largest loss among the original pairs kept), i.e. only if the filter itself would have
   kept it as a confident, low-uncertainty pair; otherwise the prompt has no pair in the next round.
   ``accept: always`` keeps every chosen pair; ``accept: never`` samples nothing and leaves the dropped prompts
   without a pair (the filter alone: an ablation, labelled "ROPO (filter only)"). The gold reward is never
   consulted for any choice. In the embedded world the chosen pairs are poor labels: in the verdict study's
   tuning (37 cells, 8 epochs) the gold reward agrees with them in 0.35 of the pairs after the first round and
   0.23 after the second (``gold_agreement``), worse than a coin, because a summed log-ratio favours long and
   degenerate samples of the policy's own; below_cut accepts nearly every pair (0.1-0.3 of 275 rejected a
   round, on average).
6. **Labels of replacement pairs** are the policy's own ranking: no injected-noise flag (they are not in
   ``is_flipped``'s denominator). Where the data has a gold reward (the embedded world) the record adds, after the
   fact and for diagnosis only, how often that ranking agrees with the gold reward (``gold_agreement``).
7. **Reference log-probs** of replacement pairs come from a frozen copy of the reference policy (the initial
   policy, loaded from ``data.model_path``) run through TRL's own preprocessing, collator and
   ``compute_ref_log_probs``: the same tokenization, truncation and forward as TRL's precompute. Each candidate is
   scored once, inside a pseudo-pair with another candidate, and an accepted pair reuses its two candidates' values:
   TRL truncates each response on its own, so a response's log-prob does not depend on its partner (not so with
   ``ld_alpha``, which no config here sets). A check at the start
   compares this path with the precomputed reference log-probs of the first pairs and fails the cell if they
   disagree (>1e-3); ``tests/test_ropo_full.py`` checks it against TRL's precompute on new pairs. Policy
   log-probs for filtering and choosing use the same path with the current policy.

Recorded (``record["ropo_full"]``): per filter round the number scored and dropped, how many of the dropped were
truly flipped (``precision`` = flipped dropped / dropped, against the injected ``is_flipped`` mask), ``recall``
(flipped dropped / flipped), ``chance_precision`` (the flip rate: what a random filter scores), ``auroc`` (the
loss as a flip detector, threshold-free), mean loss of flipped and clean pairs, the cut, and the rejection
sampling counts; and pooled over rounds ``filter_precision`` (sum of flipped dropped / sum of dropped), the
cell metric ``ropo_filter_precision`` (higher is better). Files in the cell folder: ``ropo_filter.jsonl`` (each
original pair's loss and fate per round) and ``ropo_replacements.jsonl`` (every candidate pair chosen, accepted
or not).
"""
from bench.methods.ropo_full.config import LABEL, RopoFullOptions, check_loss, round_steps
from bench.methods.ropo_full.method import RopoFull

__all__ = ["LABEL", "RopoFull", "RopoFullOptions", "check_loss", "round_steps"]
