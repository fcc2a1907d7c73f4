"""``method=rm_ensemble`` (after Coste et al., ICLR 2024, "Reward Model Ensembles Help Mitigate Overoptimization"):
``k`` reward models trained on bootstrap resamples of the cell's *noisy* training pairs judge every pair, and the
pairs whose conservative margin falls below ``threshold`` are dropped, relabelled or down-weighted before one TRL
run with the cell's loss.

Each member is the embedded reward model's recipe (all-MiniLM-L6-v2 + a reward head, TRL's ``RewardTrainer``;
``method.rm``, the composed ``evaluator/reward_model`` recipe) trained on ``n`` pairs drawn with replacement from
the ``n`` noisy pairs as labelled (seed ``cell seed``, member ``j``), cached by the pairs' text and labels, the
recipe and the member, so cells with the same noisy data share an ensemble. Margins ``m_j = r_j(chosen) -
r_j(rejected)`` of each pair as labelled are combined as the paper combines rewards: ``mean``, ``worst_case``
(``min_j m_j``) or ``uncertainty`` (``mean_j m_j - coeff * var_j m_j``). Then:

- ``drop``: disputed pairs are left out (the remaining pairs get the standard cell's number of steps);
- ``relabel``: disputed pairs have chosen and rejected swapped (and their scores; the reference log-probs follow
  through ``is_flipped``, which then says whether the pair differs from its clean label);
- ``weight``: every pair weighs ``sigmoid(m / temperature)`` in a weighted mean of the per-pair loss.

No clean label is used. The record gives the precision and recall of the disputed pairs against the flip mask
(after the fact), the chance precision (the realized flip rate) and each member's accuracy on the data's
held-out pairs (on the world: against gold).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.config.fields import spec
from bench.core.metrics import COUNTER, HIGHER
from bench.core.spec import NONNEGATIVE, POSITIVE, Param
from bench.methods.base import Method, TrainContext, TrainResult
from bench.methods.stages import Staged, total_steps

ENSEMBLE_VERSION = 1  # bump when what a member learns from the same pairs changes
BOOTSTRAP_SEED = 4_000_037


@dataclass
class RMEnsembleConfig:
    k: int = spec("reward models in the ensemble", Param(low=2, integer=True, why="an ensemble of one is no ensemble"))
    combine: str = spec("mean, worst_case (min over members) or uncertainty (mean - coeff * variance)",
                        Param(choices=("mean", "worst_case", "uncertainty")))
    coeff: float = spec("the variance's weight for combine=uncertainty", NONNEGATIVE)
    action: str = spec("what happens to disputed pairs: drop, relabel, or weight (every pair)",
                       Param(choices=("drop", "relabel", "weight")))
    threshold: float = spec("a pair is disputed when its combined margin is below this", Param())
    temperature: float = spec("action=weight: each pair weighs sigmoid(margin / temperature)", POSITIVE)
    rm: dict = spec("each member's recipe (evaluator/reward_model's keys; method.rm.train.max_steps, ...)",
                    not_in_identity=("batch_size", "device", "gold_accuracy"))


class RMEnsemble(Method):
    name = "rm_ensemble"
    config_class = RMEnsembleConfig

    def __init__(self, **options):
        from bench.config.typed import typed

        self.cfg = typed(RMEnsembleConfig, options, "method")
        if self.cfg.rm.get("path", "embedded") != "embedded":
            from bench.methods.base import MethodConfigError

            raise MethodConfigError("method.rm.path: the ensemble trains its own members; valid: embedded")

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return ("pair_weight",) if self.cfg.action == "weight" else ()

    def check(self, loss) -> str:
        return f"{getattr(loss, 'label', loss.name)} + RM ensemble ({self.cfg.action}, {self.cfg.combine})"

    def train(self, ctx: TrainContext) -> TrainResult:
        cfg, ds = self.cfg, ctx.train_dataset
        t0 = time.time()
        margins, members = ensemble_margins(ds, cfg, ctx)
        combined = combine(margins, cfg.combine, cfg.coeff)
        disputed = combined < cfg.threshold
        t_ensemble = time.time() - t0
        flipped = np.asarray(ds["is_flipped"], dtype=bool) if "is_flipped" in ds.column_names else None
        stats = touched_stats(disputed, flipped)
        ctx.log(f"rm_ensemble: {stats['n_touched']} of {len(ds)} pairs disputed ({cfg.combine}), precision "
                f"{stats['precision']}, recall {stats['recall']} (chance {stats['chance_precision']}); {cfg.action}")
        steps = [total_steps(ctx.train, len(ds))]  # the standard cell's budget whatever is dropped
        run = Staged(ctx, steps, "rm_ensemble")
        if cfg.action == "drop" and disputed.all():
            raise RuntimeError(f"method=rm_ensemble: the ensemble disputes all {len(ds)} pairs (combine={cfg.combine}, "
                               f"threshold={cfg.threshold}); nothing is left to train on: lower method.threshold or use "
                               "method.action=weight")
        if cfg.action == "drop":
            base = run.prepare(ds)  # the reference pass (or shared cache) on every pair, then the kept ones
            run.run(0, base.select(np.flatnonzero(~disputed).tolist()))
        elif cfg.action == "relabel":
            run.run(0, relabel(ds, disputed))
        else:
            run.run(0, ds.add_column("pair_weight", weights(combined, cfg.temperature).tolist()))
        record = {"rm_ensemble": {"config": asdict(cfg), **stats, "members": members,
                                  "combined_margin_mean": float(np.mean(combined))}}
        metrics = {"rm_ensemble_precision": _nan(stats["precision"]), "rm_ensemble_recall": _nan(stats["recall"]),
                   "rm_ensemble_touched": float(stats["n_touched"])}
        return run.result(record, metrics=metrics,
                          directions={"rm_ensemble_precision": HIGHER, "rm_ensemble_recall": HIGHER,
                                      "rm_ensemble_touched": COUNTER},
                          timings={"ensemble": t_ensemble})


def combine(margins: np.ndarray, how: str, coeff: float) -> np.ndarray:
    """(k, n) member margins -> one conservative margin per pair."""
    if how == "worst_case":
        return margins.min(axis=0)
    if how == "uncertainty":
        return margins.mean(axis=0) - coeff * margins.var(axis=0)
    return margins.mean(axis=0)


def weights(combined: np.ndarray, temperature: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-combined / temperature))


def touched_stats(touched: np.ndarray, flipped: np.ndarray | None) -> dict:
    """Precision and recall of the touched pairs against the flip mask (None where undefined)."""
    out = {"n_pairs": int(len(touched)), "n_touched": int(touched.sum()), "precision": None, "recall": None,
           "chance_precision": None}
    if flipped is not None:
        hit = int((touched & flipped).sum())
        out["precision"] = hit / int(touched.sum()) if touched.any() else None
        out["recall"] = hit / int(flipped.sum()) if flipped.any() else None
        out["chance_precision"] = float(flipped.mean())
    return out


def relabel(ds, mask: np.ndarray):
    """``ds`` with chosen and rejected (and every ``*_chosen``/``*_rejected`` column) swapped where ``mask``;
    ``is_flipped`` then says whether a pair's orientation differs from its clean label."""
    from noise.base import apply_flips

    out = apply_flips(ds, np.asarray(mask, dtype=bool), add_columns=False)
    if "is_flipped" in out.column_names:
        new = np.asarray(out["is_flipped"], dtype=bool) ^ np.asarray(mask, dtype=bool)
        out = out.remove_columns("is_flipped").add_column("is_flipped", new.tolist())
    return out


def _nan(v):
    return float("nan") if v is None else float(v)


# ------------------------------------------------------------------------------------------------- the members
def ensemble_margins(ds, cfg: RMEnsembleConfig, ctx: TrainContext) -> tuple[np.ndarray, list[dict]]:
    """(k, n) margins of every pair as labelled under each member, and each member's summary."""
    from bench.core.text import completion_text, prompt_text

    rows = [{"prompt": prompt_text(p), "chosen": completion_text(c), "rejected": completion_text(r)}
            for p, c, r in zip(ds["prompt"], ds["chosen"], ds["rejected"])]
    n = len(rows)
    margins, members = np.zeros((cfg.k, n)), []
    for j in range(cfg.k):
        rng = np.random.default_rng([ctx.seed, BOOTSTRAP_SEED, j])
        sample = rng.integers(0, n, size=n)
        rm, meta = _member(rows, sample, cfg, ctx, j)
        prompts = [r["prompt"] for r in rows]
        s = rm.score(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        margins[j] = s[:n] - s[n:]
        members.append({"member": j, **meta, "out_of_bag": float(1 - len(np.unique(sample)) / n)})
    return margins, members


def _member(rows: list[dict], sample: np.ndarray, cfg: RMEnsembleConfig, ctx: TrainContext, j: int):
    import json

    import evaluators
    from bench.core.cache import get_or_build, stable_hash
    from bench.models.devices import pick_device
    from evaluators.embedded_reward_model import fit
    from evaluators.rm_model import RewardModel

    rm = dict(cfg.rm)
    train = evaluators.get("reward_model", train=rm["train"]).train  # checked, as the evaluator checks it
    device = pick_device(rm.get("device", "auto"), "method.rm.device")
    max_length = int(rm["max_length"])
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    key = stable_hash({"v": ENSEMBLE_VERSION, "pairs": digest, "sample": hashlib.sha256(sample.tobytes()).hexdigest(),
                       "train": train, "max_length": max_length, "member": j})

    def build(tmp: Path) -> None:
        _, fitted = fit(tmp, [rows[i] for i in sample], train, max_length, device)
        (tmp / "meta.json").write_text(json.dumps({k: v for k, v in fitted.items() if k != "history"}))

    root = ctx.cache_root
    if root is None:
        import tempfile

        root = tempfile.mkdtemp(prefix="prefnoise-ensemble-")
    folder = get_or_build(root, "rm_ensemble", key, build)
    meta = json.loads((folder / "meta.json").read_text())
    model = RewardModel.load(str(folder / "model"), device, max_length=max_length,
                             use_chat_template=rm["chat_template"], batch_size=int(rm["batch_size"]))
    out = {"key": key, "train_steps": meta.get("train_steps"), "train_s": meta.get("train_s")}
    if ctx.heldout_pairs:  # the world's: gold-labelled; other data: as its held-out labels say
        out["heldout_accuracy"] = model.pairwise_accuracy(ctx.heldout_pairs)
    return model, out
