"""Evaluate a trained policy on held-out prompts.

Core metrics, whatever the evaluators: mean response length (words), a KL estimate to the reference (mean over
policy samples of log pi(y|x) - log pi_ref(y|x) on the sampled token ids, the Monte-Carlo estimate of
KL(pi || pi_ref); ``kl_estimate``), and the
implicit-reward accuracy of the trained policy on clean held-out pairs (the loss's own implicit reward ranks the
truly preferred response higher). Then each configured evaluator (gold, reward model, LLM judge) adds its own.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from bench.core.cache import get_or_build, stable_hash
from bench.core.metrics import COUNTER, HIGHER, LOWER, NO_DIRECTION, infos
from bench.core.text import completion_text, prompt_text
from bench.data.base import PreferenceData, text_rows
from bench.models import sampling
from evaluators import EvalBatch

CORE_METRICS = {"length": NO_DIRECTION, "length_ref": COUNTER, "kl": LOWER, "implicit_acc": HIGHER}


def render_prompts(prompts: list, tokenizer) -> list[str]:
    """Prompts as the model sees them: plain strings as they are, conversations through the chat template."""
    if all(isinstance(p, str) for p in prompts):
        return list(prompts)
    return [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]


def reference_samples(ref_model, tokenizer, data: PreferenceData, eval_cfg, cache_root: str | None) -> list[str]:
    """The reference policy's samples on the evaluation prompts: the same for every cell of a data and model, so
    they are generated once (seeded) and cached under a hash of the data, the model and the sampling settings."""
    texts = render_prompts(data.eval_prompts, tokenizer)

    def build(folder):
        out = sampling.generate(ref_model, tokenizer, texts, seed=12_345, desc="reference samples", **generation_settings(eval_cfg))
        (folder / "samples.json").write_text(json.dumps(out))

    if cache_root is None:
        return sampling.generate(ref_model, tokenizer, texts, seed=12_345, desc="reference samples", **generation_settings(eval_cfg))
    key = stable_hash({"data": data.fingerprint, "model": data.model_path, "eval": generation_settings(eval_cfg), "prompts": texts})
    return json.loads((get_or_build(cache_root, "ref_samples", key, build) / "samples.json").read_text())


def generation_settings(eval_cfg) -> dict:
    """Sampling settings of a typed ``eval`` config (``bench.config.schema.EvalConfig``)."""
    return dict(max_new_tokens=eval_cfg.max_new_tokens, temperature=eval_cfg.temperature, top_p=eval_cfg.top_p,
                batch_size=eval_cfg.batch_size)


def reference_logps(ref_model, tokenizer, prompts, responses, key_parts: dict, cache_root: str | None, load=None):
    """Reference log-probs of fixed held-out responses: the same for every cell of a data and model, so cached.
    ``ref_model`` may be None with ``load`` (no argument, gives the model): it is then loaded only if the values
    have to be computed."""
    def model():
        return ref_model if ref_model is not None else load()

    if cache_root is None:
        return sampling.sequence_logps(model(), tokenizer, prompts, responses)

    def build(folder):
        values = sampling.sequence_logps(model(), tokenizer, prompts, responses).tolist()
        (folder / "logps.json").write_text(json.dumps(values))

    key = stable_hash({**key_parts, "prompts": prompts, "responses": responses})
    return torch.tensor(json.loads((get_or_build(cache_root, "ref_eval_logps", key, build) / "logps.json").read_text()))


def kl_estimate(policy, ref_model, tokenizer, sampled, eval_cfg) -> float:
    """Monte-Carlo KL(policy || reference): the mean over the policy's samples of log pi(y|x) - log pi_ref(y|x),
    both on the sampled token ids. The policy's side was read off the logits while sampling (at temperature 1 and
    top_p 1, where the sampling distribution is the policy's own); otherwise it is a forward pass."""
    if not sampled.texts:
        return float("nan")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    own = sampled.logps
    if eval_cfg.temperature != 1.0 or eval_cfg.top_p != 1.0 or len(own) != len(sampled.texts):
        own = sampling.token_logps(policy, sampled.prompt_ids, sampled.completion_ids, pad)
    ref = sampling.token_logps(ref_model, sampled.prompt_ids, sampled.completion_ids, pad)
    return float((own - ref).mean())


def pair_rewards(policy, ref_model, tokenizer, pairs, loss, key: dict, cache_root: str | None = None):
    """The loss's own implicit rewards of each pair's chosen and rejected response (as labelled in ``pairs``)."""
    prompts = render_prompts(pairs["prompt"], tokenizer)
    chosen = [completion_text(r) for r in pairs["chosen"]]
    rejected = [completion_text(r) for r in pairs["rejected"]]

    def lengths(rs):
        ids = tokenizer([r + tokenizer.eos_token for r in rs], add_special_tokens=False)["input_ids"]
        return torch.tensor([len(i) for i in ids], dtype=torch.float)

    pc = sampling.sequence_logps(policy, tokenizer, prompts, chosen)
    pr = sampling.sequence_logps(policy, tokenizer, prompts, rejected)
    rc = rr = None
    if loss.needs_reference_model:
        rc = reference_logps(ref_model, tokenizer, prompts, chosen, key, cache_root)
        rr = reference_logps(ref_model, tokenizer, prompts, rejected, key, cache_root)
    return loss.rewards(pc, pr, rc, rr, lengths(chosen), lengths(rejected))


def implicit_accuracy(policy, ref_model, tokenizer, data: PreferenceData, loss, cache_root: str | None = None) -> float:
    """Share of the clean held-out pairs whose truly preferred response gets the higher implicit reward."""
    pairs = data.eval_pairs
    if pairs is None or len(pairs) == 0:
        return float("nan")
    key = {"data": data.fingerprint, "model": data.model_path}
    cr, rj = pair_rewards(policy, ref_model, tokenizer, pairs, loss, key, cache_root)
    return float((cr > rj).float().mean())


def evaluate_policy(
    policy, ref_model, tokenizer, data: PreferenceData, loss, eval_cfg, evaluator_list: list, seed: int,
    cache_root: str | None = None,
):
    """Returns (metrics, metric_info, samples) for one trained policy."""
    prompts = render_prompts(data.eval_prompts, tokenizer)
    sampled = sampling.sample(policy, tokenizer, prompts, seed=seed, desc="policy samples", **generation_settings(eval_cfg))
    policy_out = sampled.texts
    reference_out = reference_samples(ref_model, tokenizer, data, eval_cfg, cache_root)
    kl = kl_estimate(policy, ref_model, tokenizer, sampled, eval_cfg)
    metrics = {
        "length": float(np.mean([len(r.split()) for r in policy_out])),
        "length_ref": float(np.mean([len(r.split()) for r in reference_out])),
        "kl": float(kl),
        "implicit_acc": implicit_accuracy(policy, ref_model, tokenizer, data, loss, cache_root),
    }
    info = infos(CORE_METRICS, "core")
    batch = EvalBatch(
        prompts=[prompt_text(p) for p in data.eval_prompts],
        policy=policy_out,
        reference=reference_out,
        task=data.task,
        gold_reward=data.gold_reward,
        world_dir=data.world_dir, cache_root=cache_root,
        # off the world: what an embedded reward model trains on, and is measured on
        val_pairs=[] if data.world_dir else text_rows(data.val_pairs),
        test_pairs=[] if data.world_dir else text_rows(data.eval_pairs),
    )
    for ev in evaluator_list:  # built and checked at the cell's start (bench.cell.parts)
        metrics.update(ev.evaluate(batch))
        info.update(infos(ev.metrics, ev.name))
    samples = [{"prompt": p, "policy": a, "reference": b} for p, a, b in zip(batch.prompts, policy_out, reference_out)]
    return metrics, info, samples
