"""A cell's parts, built and checked from its composed config before anything expensive happens.

``build_parts(cfg)`` types every fixed group against its schema and builds the loss, the noise injector, the
evaluators and the method (registered names or users' ``_target_`` plug-ins), each checked against its contract.
Anything wrong is an error naming the field, the value and what is valid, within a second or two of start-up and
before any data or model is loaded. ``bench/run.py`` runs it once more up front, so a single run with a bad value
ends with that one line (no traceback unless ``HYDRA_FULL_ERROR=1``).

``Parts`` is the one config a cell carries past its start: besides the built parts, its ``header`` (``Header``:
what names the cell, the composed config as plain values, where its record goes). A cell's phases and its record
read only ``Parts``; the raw config enters ``bench.cell.run.run_cell`` and goes no further (but to a multi-GPU
cell's own launch, which hands it to its ranks).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import evaluators
import noise
from bench import losses, methods
from bench.cell.extras import check_annotators
from bench.config.schema import DATA_KINDS, MODEL_KINDS, EvalConfig, RunConfig, TrainConfig
from bench.config.typed import plain, typed
from bench.core.options import ConfigError, did_you_mean
from bench.evaluation import scorer as scoring

GROUPS = ("data", "model", "loss", "method", "noise", "scorer", "evaluator", "train", "eval")
OPTIONAL = ("evaluator", "scorer")
SITE = ("paths", "logger", "hydra", "cluster")  # where a cell runs and logs: not checked here


@dataclass(frozen=True)
class Header:
    """What names a cell and where its record goes, read from the composed config without checking it: a cell whose
    parts fail their checks still leaves a record that says which cell it is."""
    names: dict  # sweep, loss, noise, rate, seed, data, model (``describe``): a cell in records, reports and logs
    config: dict  # the composed config, resolved, as plain values (a record keeps it with secrets masked)
    results: str | None = None  # paths.results: where the cell's record goes

    @classmethod
    def of(cls, cfg) -> Header:
        c = plain(cfg)
        return cls(describe(c), c, (c.get("paths") or {}).get("results"))

    @property
    def name(self) -> str:
        """``dpo random_flip@0.2 seed 0``: the cell in its progress bar and its job's result line."""
        return short_name(self.names)


def describe(cfg) -> dict:
    """The fields that name a cell in records, reports and logs (``cfg``: a composed config or its plain values)."""
    return {
        "sweep": cfg["sweep"],
        "loss": cfg["loss"].get("name") or str(cfg["loss"].get("_target_")),
        "noise": cfg["noise"].get("name") or str(cfg["noise"].get("_target_")),
        # rate null: a scale or the data sets it
        "rate": None if cfg["noise"].get("rate") is None else float(cfg["noise"]["rate"]),
        "seed": cfg["seed"],
        "data": cfg["data"]["name"],
        "model": cfg["model"]["name"],
    }


def short_name(names: dict) -> str:
    rate = "" if names["rate"] is None else f"@{names['rate']:g}"
    return f"{names['loss']} {names['noise']}{rate} seed {names['seed']}"


@dataclass
class Parts:
    run: RunConfig
    data: Any  # bench.config.schema.WorldData | HFData
    model: Any  # TinyModel | PretrainedModel | SmolLM2Model
    train: TrainConfig
    eval: EvalConfig
    loss: Any
    injector: Any
    evaluators: list
    method: Any
    label: str  # what the cell's results are called (the method may rename the loss: "ROPO (full method)")
    scorer: Any = None  # bench.evaluation.scorer.ScorerConfig: per-response scores, when the loss or method reads them
    cache_root: str | None = None  # paths.cache: the shared artifact cache (worlds, reward models, scores, ...)
    noise_node: dict = field(default_factory=dict)  # the noise config as resolved (a proxy reward model re-noises)
    wandb: bool = False  # logger=wandb: the trainer reports to it
    header: Header | None = None  # what names the cell, its composed config, where its record goes


def build_parts(cfg, header: Header | None = None) -> Parts:
    """``cfg``'s parts, built and checked; ``header``: the cell's ``Header.of(cfg)`` where the caller has it."""
    c = dict(plain(cfg))
    missing = [g for g in GROUPS if g not in c and g not in OPTIONAL]
    if missing:
        raise ConfigError(f"{missing[0]} is not set; valid: a config with the groups {', '.join(GROUPS)}.")
    top = {k: v for k, v in c.items() if k not in GROUPS + SITE}
    run = typed(RunConfig, top, "")
    data = typed(_kind(DATA_KINDS, c["data"], "data"), c["data"], "data")
    model = typed(_kind(MODEL_KINDS, c["model"], "model"), c["model"], "model")
    if data.kind != "world" and model.kind == "tiny":
        raise ConfigError(f"model={model.name!r} with data={data.kind}: the tiny model is the embedded world's own "
                          "reference policy; valid: model=smollm2_135m or model=local model.path=... on other data.")
    if data.kind != "world" and getattr(getattr(model, "sft", None), "steps", 0) and model.kind != "tiny":
        raise ConfigError(f"model.sft.steps={model.sft.steps} with data={data.kind}: the SFT on world text is for "
                          "data=world only; valid: model.sft.steps=0 (fine-tune your model before, on your data).")
    train = typed(TrainConfig, c["train"], "train")
    evalc = typed(EvalConfig, c["eval"], "eval")
    if evalc.checkpoints.stop_after is not None and evalc.checkpoints.every is None:
        raise ConfigError(f"eval.checkpoints.stop_after={evalc.checkpoints.stop_after:g} ends training at a "
                          "checkpoint, and eval.checkpoints.every is null (none are scored); valid: "
                          "eval.checkpoints.every set (e.g. 1: every epoch), or stop_after=null.")
    loss, injector = _loss_and_noise(c["loss"], c["noise"], run.seed)
    evaluator_list = _evaluators(c.get("evaluator") or {})
    for ev in evaluator_list:  # what an evaluator needs of the data, before any of it is loaded
        if callable(getattr(ev, "check_data", None)):
            ev.check_data(data)
    method = methods.from_config(c["method"])
    label = method.check(loss) if callable(getattr(method, "check", None)) else None
    label = label or getattr(loss, "label", loss.name)
    check_annotators(loss, injector)
    scorer = scoring.check(c.get("scorer"), data.kind)
    scoring.check_needed(scorer, loss, method)
    if not scoring.reads_scores(loss, method):
        scorer = scoring.ScorerConfig(name="none")  # nothing reads scores: not computed, not in the identity
    elif scorer.name != "proxy":
        label = f"{label} [{scorer.name} scorer]"  # the oracle (or a given model) is said in every table
    return Parts(run, data, model, train, evalc, loss, injector, evaluator_list, method, label, scorer,
                 cache_root=(c.get("paths") or {}).get("cache"), noise_node=dict(c["noise"]),
                 wandb=(c.get("logger") or {}).get("name") == "wandb", header=header or Header.of(c))


def _kind(kinds: dict, node: Mapping, group: str):
    kind = (node or {}).get("kind")
    if kind not in kinds:
        raise ConfigError(f"{group}.kind: {did_you_mean('kind', kind, kinds)}")
    return kinds[kind]


def _loss_and_noise(loss_node: Mapping, noise_node: Mapping, seed: int):
    injector = noise.from_config(noise_node, seed=seed)
    # eps: oracle is the flip rate the noise states (its rate; 0 for skip and tie; none for a scale or natural labels)
    rate = getattr(injector, "flip_rate", noise_node.get("rate"))
    return losses.from_config(loss_node, noise_rate=rate), injector


def _evaluators(nodes: Mapping) -> list:
    return [evaluators.from_config(node, where=f"evaluator.{key}") for key, node in nodes.items()]
