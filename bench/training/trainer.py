"""One trainer path for every loss: TRL's DPOTrainer with the loss looked up in ``bench.losses``.

TRL keeps its losses in an if/elif chain inside ``DPOTrainer._compute_loss`` with no hook, and its maintainers
point to subclassing. So this module overrides exactly these methods and nothing else:

- ``_compute_loss``: the policy's summed completion log-probs (packed, without padding, each pair's prompt
  computed once, ``bench.training.packing``; TRL's own fused-LM-head forward where that path does not match it),
  then the registry loss over (policy, reference) summed log-probs and completion lengths, and the metrics;
- ``_precompute_ref_logps``: reference log-probs always come from the precompute path (TRL's own, or columns the
  cell already attached from the shared cache); reference-free losses skip the reference pass entirely;
- ``compute_ref_log_probs``: the precompute's forward, on the training path (packed where that serves). Under LoRA
  (``lora``: peft on TRL's own route, ``bench.training.lora``) the reference pass runs with the adapter disabled
  (the base model, whichever path computes it); a method that scores pairs under a model it names through this
  forward (``bench.methods.pairs.pair_logps``: the current policy) gets that model as it is, adapter on;
- ``_set_signature_columns_if_needed`` and the collator: the per-pair extras a loss or method asks for
  (``EXTRA_COLUMNS``: a scorer's scores, the annotator, a pair weight, a label confidence) reach the batch, and are stripped before the
  forward (TRL would hand unknown keys to the model); ``create_optimizer``: a loss's own learned parameters.

TRL is pinned (pyproject) because both methods are TRL internals; tests train one step per loss to catch drift.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager, nullcontext

import torch
from trl import DPOTrainer

from bench.models.callbacks import quiet
from bench.training import lora as lora_mod
from bench.training import packing

# TRL 1.16's reference pass reads a property transformers 5.23 renamed (`is_gradient_checkpointing`), whatever the
# settings: a warning per reference pass that says nothing about this project's configuration
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

log = logging.getLogger("prefnoise")
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
# per-pair inputs beyond the text, carried into every batch when the dataset has them and the run asks for them
EXTRA_COLUMNS = ("score_chosen", "score_rejected", "annotator_idx", "pair_weight", "label_confidence")


def _why(gap: float) -> str:
    """Why the first-batch check (``packing.matches_padded``) turned a packed layout down."""
    if gap == float("inf"):
        return "the layout could not be checked on the first batch (no pair shares a prompt, or the model refused it)"
    return f"its log-probs differ from TRL's by {gap:.3g} (tolerance: bench.training.packing.matches_padded)"


class ExtrasCollator:
    """TRL's collator, plus a tensor for each extra column the examples carry."""

    def __init__(self, base, names: tuple[str, ...]):
        self.base, self.names = base, names

    def __call__(self, examples: list[dict]) -> dict:
        out = self.base(examples)
        for name in self.names:
            if examples and name in examples[0]:
                dtype = torch.long if name == "annotator_idx" else torch.float32
                out[name] = torch.tensor([ex[name] for ex in examples], dtype=dtype)
        return out


class PreferenceTrainer(DPOTrainer):
    def __init__(self, *args, pref_loss, ref_cache=None, print_logs: bool = False, extra_columns=(), packing=True,
                 share_prompt=True, lora=None, **kwargs):
        """``lora``: the typed ``train.lora`` block (``bench.config.schema.LoraAdapterConfig``) or None (full
        fine-tuning). A plain model is wrapped by TRL (``peft_config``); a ``PeftModel`` (a later run of a method's
        rounds) keeps its trained adapter."""
        # set before super().__init__, which runs the reference precompute
        self.pref_loss = pref_loss
        self.packing = None if packing else False  # None: decided on the first training batch (matches_padded)
        self.share_prompt = bool(packing and share_prompt)  # each pair's prompt computed once (where it serves)
        self.ref_cache = ref_cache  # bench.training.ref_cache.ReferenceLogpCache or None (compute in this cell)
        self.extra_columns = tuple(c for c in extra_columns if c in EXTRA_COLUMNS)
        self.lora = lora
        self._reference_pass = False  # True while the precompute runs: the reference forward (adapter disabled)
        if lora is not None and not lora_mod.is_peft(kwargs.get("model", args[0] if args else None)):
            kwargs["peft_config"] = lora_mod.peft_config(lora)  # TRL's own route: it wraps the policy
        super().__init__(*args, **kwargs)
        if lora is not None and "ref" in self.model.peft_config:
            self.model.delete_adapter("ref")  # TRL's copy of a trained adapter: our reference is the base model
        quiet(self, "train", print_logs)  # the cell's bar, not per-step dicts, on the terminal
        if self.extra_columns:
            self.data_collator = ExtrasCollator(self.data_collator, self.extra_columns)
        for p in getattr(pref_loss, "trainable_parameters", list)():
            p.data = p.data.to(self.accelerator.device)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(self._signature_columns) + [
            c for c in self.extra_columns if c not in self._signature_columns]

    def create_optimizer(self, *args, **kwargs):
        optimizer = super().create_optimizer(*args, **kwargs)
        own = list(getattr(self.pref_loss, "trainable_parameters", list)())
        if own and not any(p is q for g in optimizer.param_groups for p in g["params"] for q in own):
            optimizer.add_param_group({"params": own, "weight_decay": 0.0,
                                       "lr": getattr(self.pref_loss, "param_lr", self.args.learning_rate)})
        return optimizer

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if not self.pref_loss.needs_reference_model:
            return dataset  # reference-free: no reference forward at all
        if all(c in dataset.column_names for c in REF_COLUMNS):
            return dataset  # attached by the caller

        def compute(ds):
            self._reference_pass = True
            try:
                return super(PreferenceTrainer, self)._precompute_ref_logps(ds, name, batch_size)
            finally:
                self._reference_pass = False

        if self.ref_cache is None or name != "train":
            return compute(dataset)
        return self.ref_cache(dataset, compute)

    def compute_ref_log_probs(self, model, inputs):
        """TRL's reference forward, on the same path as training (where the packed path serves, the policy at the
        reference gives z = 0 exactly at the first step). In the precompute it is the reference: under LoRA the
        adapter is disabled, on the packed path as on TRL's. Called by a method with a model of its choosing (the
        current policy, a frozen copy: ``bench.methods.pairs``), it scores under that model as it is."""
        if self.packing is None:
            self._decide_packing(model, inputs)
        if self.ld_alpha is not None or (self.lora is None and not self.packing):
            return super().compute_ref_log_probs(model, inputs)  # TRL's own (its adapter rule for a peft model)
        as_it_is = self.lora is not None and not self._reference_pass
        with torch.no_grad(), (nullcontext() if as_it_is else self._reference_adapter()), self.accelerator.autocast():
            logps, _, _ = self._policy_logps(model, inputs, self._model_kwargs(inputs))
        return logps.chunk(2, dim=0)

    @contextmanager
    def _reference_adapter(self):
        """The reference under a peft model (TRL's rule, ``trl.trainer.utils.use_adapter``): the adapter disabled,
        or a frozen ``ref`` adapter where the model came with one and this trainer does not own the LoRA."""
        if self.ref_model is not None or not lora_mod.is_peft(self.accelerator.unwrap_model(self.model)):
            yield
            return
        from trl.trainer.utils import use_adapter

        unwrapped = self.accelerator.unwrap_model(self.model)
        name = "ref" if self.lora is None and "ref" in unwrapped.peft_config else None
        with use_adapter(unwrapped, adapter_name=name):
            yield

    def _decide_packing(self, model, inputs) -> None:
        """Packed with shared prompts where that gives TRL's log-probs, else packed, else TRL's padded path."""
        self.packing = False
        if self.accelerator.num_processes != 1:
            return
        gaps = {}
        for share in (True, False) if self.share_prompt and packing.can_share(model) else (False,):
            ok, gaps[share] = packing.matches_padded(model, inputs, share=share)
            if ok:
                self.packing, self.share_prompt = True, share
                if self.share_prompt is False and True in gaps:
                    log.warning("prompts not shared: %s", _why(gaps[True]))
                return
        self.share_prompt = False
        log.warning("TRL's padded path (train.packing ignored): %s", _why(min(gaps.values())))

    def _policy_logps(self, model, inputs, model_kwargs):
        """(summed completion log-probs, completion lengths, mean entropy) of the batch's sequences: packed, without
        padding (``bench.training.packing``), where that path gives the padded one's values; else TRL's."""
        if self.packing is None:
            self._decide_packing(model, inputs)
        if self.packing:  # under the trainer's autocast: the backbone is called directly, not model.forward
            with self.accelerator.autocast():
                packed = packing.pack(inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"],
                                      share=self.share_prompt, qk=packing.qk_cost(model))
                return packing.sequence_logps(model, packed)
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[..., 1:]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        per_token_logps = outputs.log_probs[:, -shift_mask.size(1) :]
        entropy = outputs.entropy[:, -shift_mask.size(1) :]
        with torch.no_grad():
            mean_entropy = (entropy * shift_mask).sum() / shift_mask.sum().clamp(min=1)
        return per_token_logps.sum(dim=1), shift_mask.sum(dim=1).to(per_token_logps.dtype), mean_entropy

    @staticmethod
    def _model_kwargs(inputs) -> dict:
        out = {k: v for k, v in inputs.items() if k not in ("completion_mask", *REF_COLUMNS, *EXTRA_COLUMNS)}
        out["use_cache"] = False
        return out

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        model_kwargs = self._model_kwargs(inputs)
        logps, lengths, entropy = self._policy_logps(model, inputs, model_kwargs)
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)  # the batch is [chosen, rejected]
        chosen_len, rejected_len = lengths.chunk(2, dim=0)

        if self.pref_loss.needs_reference_model:
            ref_c, ref_r = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_c = ref_r = None
        args = (chosen_logps, rejected_logps, ref_c, ref_r, chosen_len, rejected_len)
        extras = {k: inputs[k] for k in EXTRA_COLUMNS if k in inputs}
        if getattr(self.pref_loss, "uses_extras", False):
            per_pair = self.pref_loss(*args, extras=extras)
        else:
            per_pair = self.pref_loss(*args)
        if "pair_weight" in extras:  # a method's per-pair weights (rm_ensemble): a weighted mean
            w = extras["pair_weight"].to(per_pair.dtype)
            loss = (per_pair * w).sum() / w.sum().clamp(min=1e-12)
        else:
            loss = per_pair.mean()
        self._log_metrics(mode, args, entropy, extras)
        if return_outputs:
            with torch.no_grad():
                outputs = model(**model_kwargs)
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _log_metrics(self, mode, args, entropy, extras=None):
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
        m["entropy"].append(float(entropy))
        kw = {"extras": extras} if getattr(self.pref_loss, "uses_extras", False) else {}
        for key, value in self.pref_loss.diagnostics(*detached, **kw).items():
            if key != "margin":  # already logged as rewards/margins
                m[f"diag/{key}"].append(gather(value.float()).mean().item())
