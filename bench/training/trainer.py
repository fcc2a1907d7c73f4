"""One trainer path for every loss: TRL's DPOTrainer with the loss looked up in ``bench.losses``.

TRL keeps its losses in an if/elif chain inside ``DPOTrainer._compute_loss`` with no hook, and its maintainers
point to subclassing. So this module overrides exactly two methods and nothing else:

- ``_compute_loss``: the same policy forward as TRL (fused LM head, per-token log-probs over the completion), then
  the registry loss over (policy, reference) summed log-probs and completion lengths, and the metrics.
- ``_precompute_ref_logps``: reference log-probs always come from the precompute path (TRL's own, or columns the
  cell already attached from the shared cache); reference-free losses skip the reference pass entirely.

TRL is pinned (pyproject) because both methods are TRL internals; tests train one step per loss to catch drift.
"""
from __future__ import annotations

import warnings

import torch
from trl import DPOTrainer

from bench.models.callbacks import quiet

# TRL 1.16's reference pass reads a property transformers 5.23 renamed (`is_gradient_checkpointing`), whatever the
# settings: a warning per reference pass that says nothing about this project's configuration
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


class PreferenceTrainer(DPOTrainer):
    def __init__(self, *args, pref_loss, ref_cache=None, print_logs: bool = False, **kwargs):
        # set before super().__init__, which runs the reference precompute
        self.pref_loss = pref_loss
        self.ref_cache = ref_cache  # bench.training.ref_cache.ReferenceLogpCache or None (compute in this cell)
        super().__init__(*args, **kwargs)
        quiet(self, "train", print_logs)  # the cell's bar, not per-step dicts, on the terminal

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if not self.pref_loss.needs_reference_model:
            return dataset  # reference-free: no reference forward at all
        if all(c in dataset.column_names for c in REF_COLUMNS):
            return dataset  # attached by the caller
        compute = lambda ds: super(PreferenceTrainer, self)._precompute_ref_logps(ds, name, batch_size)  # noqa: E731
        if self.ref_cache is None or name != "train":
            return compute(dataset)
        return self.ref_cache(dataset, compute)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        model_kwargs = {k: v for k, v in inputs.items() if k not in ("completion_mask", *REF_COLUMNS)}
        model_kwargs["use_cache"] = False
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[..., 1:]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        per_token_logps = outputs.log_probs[:, -shift_mask.size(1) :]
        chosen_logps, rejected_logps = per_token_logps.sum(dim=1).chunk(2, dim=0)  # batch is [chosen, rejected]
        chosen_len, rejected_len = shift_mask.sum(dim=1).to(per_token_logps.dtype).chunk(2, dim=0)

        if self.pref_loss.needs_reference_model:
            ref_c, ref_r = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_c = ref_r = None
        args = (chosen_logps, rejected_logps, ref_c, ref_r, chosen_len, rejected_len)
        loss = self.pref_loss(*args).mean()
        self._log_metrics(mode, args, outputs, shift_mask)
        if return_outputs:
            with torch.no_grad():
                outputs = model(**model_kwargs)
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _log_metrics(self, mode, args, outputs, shift_mask):
        detached = tuple(a.detach() if a is not None else None for a in args)
        chosen_r, rejected_r = self.pref_loss.rewards(*detached)
        m = self._metrics[mode]
        gather = self.accelerator.gather
        m["rewards/chosen"].append(gather(chosen_r).mean().item())
        m["rewards/rejected"].append(gather(rejected_r).mean().item())
        m["rewards/margins"].append(gather(chosen_r - rejected_r).mean().item())
        m["rewards/accuracies"].append(gather((chosen_r > rejected_r).float()).mean().item())
        m["logps/chosen"].append(gather(detached[0]).mean().item())
        m["logps/rejected"].append(gather(detached[1]).mean().item())
        entropy = outputs.entropy[:, -shift_mask.size(1) :]
        m["entropy"].append(((entropy * shift_mask).sum() / shift_mask.sum().clamp(min=1)).item())
        for key, value in self.pref_loss.diagnostics(*detached).items():
            if key != "margin":  # already logged as rewards/margins
                m[f"diag/{key}"].append(gather(value.float()).mean().item())
