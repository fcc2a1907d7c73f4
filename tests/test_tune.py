"""The tuning protocol: the validation split, selection on synthetic scores (known best, edge flag, ties), a
final cell on selected values, the limits in which other losses are DPO, and a tuning sweep end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.tune import protocol, selection
from bench.tune.apply import apply
from bench.tune.space import Knob, Space
from conftest import run_bench

LR = (1e-4, 2e-4, 4e-4)
SPACE = Space("dpo", (Knob("train.learning_rate", LR, 2e-4), Knob("loss.beta", (0.05, 0.1, 0.2), 0.1)))


# ------------------------------------------------------------------------------------------------ the split
def test_world_validation_split_is_disjoint_and_noised_with_its_own_mask(smoke_root):
    import noise
    from bench import data
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.world import rules

    parts = build_parts(compose(["experiment=smoke"]))
    d = data.load(parts.data, parts.model, str(smoke_root / ".cache"))
    goal = lambda prompts: {(rules.parse_prompt(p).item, rules.parse_prompt(p).aspect) for p in prompts}  # noqa: E731
    val = goal(d.val_pairs["prompt"])
    assert val and not val & goal(d.train["prompt"]) and not val & goal(d.eval_pairs["prompt"])
    assert set(d.val_prompts) == set(d.val_pairs["prompt"]) and len(d.val_prompts) == len(set(d.val_prompts))
    # labelled like the training pairs: chosen is the one the gold reward prefers
    assert all(c > r for c, r in zip(d.val_pairs["gold_chosen"], d.val_pairs["gold_rejected"]))
    # noised by the cell's injector configuration with a mask of its own (not the training mask's seed)
    from bench.evaluation.validation import VAL_SEED, _injector

    node = {"name": "random_flip", "rate": 0.5, "seed": 3}
    noisy = _injector(node, 3 + VAL_SEED)(d.val_pairs)
    from bench.core.counting import exact_count

    assert sum(noisy["is_flipped"]) == exact_count(0.5, len(d.val_pairs))
    same_seed = noise.get("random_flip", rate=0.5, seed=3)(d.val_pairs)
    assert list(noisy["is_flipped"]) != list(same_seed["is_flipped"])


def test_hf_validation_split_holds_out_whole_prompts(tmp_path):
    from bench.config.schema import HFData, PretrainedModel, SFTConfig
    from bench.data.hf import load_hf

    rows = [{"prompt": f"q{i % 40}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(200)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = load_hf(HFData(name="hf", kind="hf", path=str(path), split="train", columns={}, eval_fraction=0.2,
                       val_fraction=0.3, eval_samples_per_prompt=1, max_eval_prompts=None, max_pairs=None),
                PretrainedModel(name="local", kind="pretrained", path="x",
                                sft=SFTConfig(steps=0, batch_size=8, lr=1e-4)))
    train, val, test = (set(x["prompt"]) for x in (d.train, d.val_pairs, d.eval_pairs))
    assert val and test and not train & val and not train & test and not val & test
    assert len(d.train) + len(d.val_pairs) + len(d.eval_pairs) == 200 and set(d.val_prompts) == val


# ------------------------------------------------------------------------------------------------ the protocol
def _scores(f) -> dict:
    """{(loss, condition, point, seed): metrics} from f(lr, beta, seed) -> val score."""
    out = {}
    for lr in LR:
        for beta in (0.05, 0.1, 0.2):
            for seed in (0, 1):
                p = protocol.point({"train.learning_rate": lr, "loss.beta": beta})
                out[("dpo", "c", p, seed)] = {"val_gold_reward": f(lr, beta, seed), "gold_reward": 10 * lr + beta}
    return out


def _plan(seeds=(0, 1)) -> dict:
    return {"criteria": ["oracle"], "seeds": list(seeds),
            "conditions": [{"key": "c", "noise": "random_flip", "rate": 0.4}],
            "losses": {"dpo": {"stages": [{"key": k.key, "values": list(k.values), "default": k.default}
                                          for k in SPACE.stages], "budget": SPACE.budget}}}


def test_one_knob_after_another_finds_the_known_best():
    # best lr 4e-4 (at the grid's edge), then best beta 0.05 at that lr (another edge); seeds average
    f = lambda lr, beta, seed: -abs(lr - 4e-4) * 1e3 - abs(beta - 0.05) + 0.01 * seed  # noqa: E731
    (row,) = selection.select(_plan(), _scores(f))
    assert (row["train.learning_rate"], row["loss.beta"]) == (4e-4, 0.05)
    assert row["val_score"] == pytest.approx(0.005)  # the mean over seeds 0 and 1
    assert row["n_configs"] == 5 == row["budget"] and row["n_seeds"] == 2
    assert row["at_edge"] and row["edge_keys"] == "train.learning_rate,loss.beta"
    assert row["test_gold_reward"] == pytest.approx(10 * 4e-4 + 0.05)


def test_an_interior_pick_is_not_at_an_edge_and_the_walk_is_sequential():
    # lr is chosen at the default beta: a better beta at another lr is never seen (one knob after another)
    def f(lr, beta, seed):
        return {(2e-4, 0.1): 1.0, (2e-4, 0.2): 1.5, (4e-4, 0.05): 9.0}.get((lr, beta), 0.0)

    (row,) = selection.select(_plan(), _scores(f))
    assert (row["train.learning_rate"], row["loss.beta"]) == (2e-4, 0.2) and row["edge_keys"] == "loss.beta"
    f2 = lambda lr, beta, seed: 1.0 if (lr, beta) == (2e-4, 0.1) else 0.0  # noqa: E731
    (row,) = selection.select(_plan(), _scores(f2))
    assert not row["at_edge"] and row["edge_keys"] == ""


def test_ties_go_to_the_value_nearest_the_default_then_the_smaller():
    (row,) = selection.select(_plan(), _scores(lambda lr, beta, seed: 0.0))  # everything ties
    assert (row["train.learning_rate"], row["loss.beta"]) == (2e-4, 0.1)  # the defaults
    tied_edges = lambda lr, beta, seed: 1.0 if lr in (1e-4, 4e-4) else 0.0  # noqa: E731
    (row,) = selection.select(_plan(), _scores(tied_edges))
    assert row["train.learning_rate"] == 1e-4  # equally far from the default: the smaller


def test_missing_and_failed_points_do_not_compete():
    scores = _scores(lambda lr, beta, seed: lr * 1e4)
    for seed in (0, 1):  # the best lr's cells failed: no record, no score
        del scores[("dpo", "c", protocol.point({"train.learning_rate": 4e-4, "loss.beta": 0.1}), seed)]
    (row,) = selection.select(_plan(), scores)
    assert row["train.learning_rate"] == 2e-4
    (none,) = selection.select(_plan(), {})
    assert math.isnan(none["val_score"]) and "no scores" in none["note"]


# ------------------------------------------------------------------------------------------------ a final cell
def test_a_final_cell_takes_the_selected_values_and_records_where_they_came_from(tmp_path):
    from bench.config.compose import compose

    folder = selection.tuning_dir(tmp_path / "results", "t")
    folder.mkdir(parents=True)
    (folder / selection.PLAN).write_text(json.dumps({"seeds": [0]}))
    rows = [{"loss": "dpo", "noise": "random_flip", "rate": 0.4, "criterion": "val_rm", "train.learning_rate": 4e-4,
             "loss.beta": 0.05, "val_score": 0.3, "n_configs": 9, "at_edge": True, "edge_keys": "loss.beta"}]
    selection.write(folder, rows)
    base = ["experiment=smoke", f"paths.root={tmp_path}", "noise.rate=0.4", "seed=100"]
    cfg, source = apply(compose([*base, "tuning=t/val_rm"]))
    assert cfg.train.learning_rate == 4e-4 and cfg.loss.beta == 0.05
    assert source["source"] == "tuning" and source["criterion"] == "val_rm" and source["at_edge"]
    assert source["values"] == {"train.learning_rate": 4e-4, "loss.beta": 0.05}
    assert apply(compose(base))[1] == {"source": "default"}
    from bench.core.options import ConfigError

    with pytest.raises(ConfigError, match="seed=0 was a tuning seed"):
        apply(compose([*base, "seed=0", "tuning=t/val_rm"]))
    with pytest.raises(ConfigError, match="no row for loss=dpo noise=random_flip noise.rate=0.2"):
        apply(compose([*base, "noise.rate=0.2", "tuning=t/val_rm"]))
    with pytest.raises(ConfigError, match="Did you mean 'oracle'"):
        apply(compose([*base, "tuning=t/oracl"]))


def test_an_untuned_condition_borrows_the_nearest_tuned_rate_of_the_noise_it_names(tmp_path):
    from bench.config.compose import compose
    from bench.core.options import ConfigError
    from bench.tune.apply import is_current

    folder = selection.tuning_dir(tmp_path / "results", "t")
    folder.mkdir(parents=True)
    (folder / selection.PLAN).write_text(json.dumps({"seeds": [0]}))
    rows = [{"loss": "dpo", "noise": "random_flip", "rate": r, "criterion": "oracle", "train.learning_rate": lr,
             "val_score": 0.1, "n_configs": 7, "at_edge": False, "edge_keys": ""}
            for r, lr in ((0.0, 1e-4), (0.2, 2e-4), (0.4, 4e-4))]
    selection.write(folder, rows)
    base = ["experiment=smoke", f"paths.root={tmp_path}", "seed=100", "tuning=t/oracle", "tuning_from=random_flip"]
    for noise, rate, lr, took in (("random_flip", 0.1, 2e-4, 0.2), ("random_flip", 0.3, 4e-4, 0.4),
                                  ("length_biased", 0.4, 4e-4, 0.4), ("length_biased", 0.05, 1e-4, 0.0)):
        cfg, source = apply(compose([*base, f"noise={noise}", f"noise.rate={rate}"]))
        assert cfg.train.learning_rate == lr, (noise, rate)
        assert source["from"] == {"noise": "random_flip", "rate": took}
        assert is_current(source, rows, "dpo", noise, rate)
        moved = [{**r, "train.learning_rate": 8e-4} if r["rate"] == took else r for r in rows]
        assert not is_current(source, moved, "dpo", noise, rate)  # the borrowed row changed: stale
    _, source = apply(compose([*base, "noise.rate=0.1"]))
    nearer = rows + [{**rows[1], "rate": 0.1}]  # the sweep has since tuned 0.1 itself: the cell is stale
    assert is_current(source, rows, "dpo", "random_flip", 0.1)
    assert not is_current(source, nearer, "dpo", "random_flip", 0.1)
    plain, own = apply(compose([*base[:-1], "noise.rate=0.2"]))
    assert "from" not in own and plain.train.learning_rate == 2e-4
    assert "from" not in apply(compose([*base, "noise.rate=0.2"]))[1]  # its own condition: nothing borrowed
    unscored = [{**r, "val_score": float("nan"), "note": "train.learning_rate: no scores"} if r["rate"] == 0.4 else r
                for r in rows]
    selection.write(folder, unscored)
    with pytest.raises(ConfigError, match="noise.rate=0.4 has no validation score .train.learning_rate: no scores"):
        apply(compose([*base, "noise=length_biased", "noise.rate=0.4"]))
    selection.write(folder, rows)
    with pytest.raises(ConfigError, match="tuning_from='length_biased'.*valid: one of random_flip"):
        apply(compose([*base[:-1], "tuning_from=length_biased", "noise.rate=0.2"]))
    with pytest.raises(ConfigError, match="or tuning_from=<a tuned noise> to borrow one"):
        apply(compose([*base[:-1], "noise=length_biased", "noise.rate=0.4"]))
    with pytest.raises(ConfigError, match="tuning_from='random_flip' borrows .* and tuning is null"):
        apply(compose([f"paths.root={tmp_path}", "experiment=smoke", "tuning_from=random_flip"]))
    from bench.cell.identity import cell_id

    assert cell_id(compose([*base, "noise.rate=0.2"])) == cell_id(compose([*base[:-1], "noise.rate=0.2"]))


def test_stop_at_pick_ends_a_final_cell_at_the_latest_checkpoint_any_rule_picked_for_its_values(tmp_path):
    """Two rules that picked the same values share one cell: it trains to the later of their checkpoints, so its
    curve has both; a rule with other values is another cell, stopped at its own pick. Not part of the cell's id."""
    from bench.cell.identity import cell_id
    from bench.config.compose import compose
    from bench.core.options import ConfigError

    folder = selection.tuning_dir(tmp_path / "results", "t")
    folder.mkdir(parents=True)
    (folder / selection.PLAN).write_text(json.dumps({"seeds": [0], "checkpoints": True}))
    row = {"loss": "dpo", "noise": "random_flip", "rate": 0.4, "val_score": 0.1, "n_configs": 7, "at_edge": False,
           "edge_keys": ""}
    rows = [{**row, "criterion": "oracle", "train.learning_rate": 2e-4, "checkpoint": 3.0},
            {**row, "criterion": "val_rm_kl", "train.learning_rate": 2e-4, "checkpoint": 5.0},
            {**row, "criterion": "val_rm", "train.learning_rate": 1e-4, "checkpoint": 7.0},
            {**row, "rate": 0.2, "criterion": "oracle", "train.learning_rate": 2e-4, "checkpoint": 8.0}]
    selection.write(folder, rows)
    base = ["experiment=smoke", f"paths.root={tmp_path}", "noise.rate=0.4", "seed=100", "eval.checkpoints.every=1"]
    stop = [*base, "eval.checkpoints.stop_at_pick=true"]
    for rule, picked, after in (("oracle", 3.0, 5.0), ("val_rm_kl", 5.0, 5.0), ("val_rm", 7.0, 7.0)):
        cfg, source = apply(compose([*stop, f"tuning=t/{rule}"]))
        assert source["checkpoint"] == picked and cfg.eval.checkpoints.stop_after == after, rule
        plain, _ = apply(compose([*base, f"tuning=t/{rule}"]))
        assert plain.eval.checkpoints.stop_after is None and cell_id(plain) == cell_id(cfg)
    assert apply(compose(stop))[0].eval.checkpoints.stop_after is None  # no tuning: nothing picked
    with pytest.raises(ConfigError, match="stop_after=2 and eval.checkpoints.stop_at_pick=true both"):
        apply(compose([*stop, "tuning=t/oracle", "eval.checkpoints.stop_after=2"]))


# ------------------------------------------------------------------------------------------------ invariants
@pytest.mark.slow
def test_losses_that_reduce_to_dpo_give_dpos_result(tmp_path, smoke_root):
    """cDPO and UDPO at eps 0 and Dr. DPO as beta' grows are DPO: the same cell result on the smoke world."""
    common = ["experiment=smoke", f"paths.cache={smoke_root / '.cache'}", "noise.rate=0.4", "train.max_steps=4",
              "eval.max_new_tokens=8", "train.learning_rate=1e-3"]
    variants = {"dpo": [], "cdpo": ["loss.eps=0"], "udpo": ["loss.eps=0"], "drdpo": ["loss.beta_prime=1e7"]}
    recs = {}
    for loss, extra in variants.items():
        run_bench(*common, f"loss={loss}", *extra, root=tmp_path)
    for path in (tmp_path / "results" / "cells").glob("*/record.json"):
        r = json.loads(path.read_text())
        recs[r["loss"]] = r
    dpo = recs["dpo"]
    logs = {loss: [json.loads(line)["loss"] for line in (tmp_path / "results" / "cells" / r["cell_id"] /
                                                          "train_log.jsonl").read_text().splitlines()]
            for loss, r in recs.items()}
    for loss in ("cdpo", "udpo", "drdpo"):
        np.testing.assert_allclose(logs[loss], logs["dpo"], rtol=1e-4)  # the same training, step by step
        for m in ("gold_reward", "implicit_acc", "kl", "length"):
            assert recs[loss]["metrics"][m] == pytest.approx(dpo["metrics"][m], abs=1e-3), (loss, m)
    assert dpo["metrics"]["implicit_acc"] != 0.5  # the training moved the policy: the check is not vacuous


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_tune_smoke_is_a_seconds_long_tuning_sweep_with_its_selection(tmp_path, smoke_root):
    ckpt = ("eval.checkpoints.every=1", "eval.checkpoints.unit=steps")  # the checkpoint is a knob too
    proc = run_bench("-m", "experiment=tune_smoke", f"paths.cache={smoke_root / '.cache'}", *ckpt, root=tmp_path)
    assert "selection written to" in proc.stdout
    folder = tmp_path / "results" / "tuning" / "tune_smoke"
    rows = selection.read(folder)
    assert {r["criterion"] for r in rows} == {"oracle", "val_acc", "val_rm", "val_rm_kl"}
    for r in rows:
        assert r["train.learning_rate"] in (1e-4, 2e-4, 4e-4) and r["loss.beta"] in (0.05, 0.1, 0.2)
        assert r["n_configs"] == 5 and not math.isnan(r["val_score"]) and r["budget"] == 5
        assert r["checkpoint"] in (0.1818, 0.3636)  # step 1 or 2 (the end) of 11 steps an epoch
    jobs = [json.loads(line) for line in (folder / selection.JOBS).read_text().splitlines()]
    assert 5 <= len(jobs) <= 3 + 4 * 2 and all(j["status"] == "ok" for j in jobs)
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "cells").glob("*/record.json")]
    assert all("val_gold_reward" in r["metrics"] and "val_rm_kl" in r["metrics"] for r in recs)
    # the CLI re-makes the same selection from the records
    before = (folder / selection.SELECTION).read_text()
    (folder / selection.SELECTION).unlink()
    import subprocess
    import sys

    from conftest import ROOT

    subprocess.run([sys.executable, "-m", "bench.tune", "select", "--sweep", "tune_smoke", "--results",
                    str(tmp_path / "results")], cwd=ROOT, check=True, capture_output=True)
    assert (folder / selection.SELECTION).read_text() == before
    # a final cell on the selection, on a fresh seed
    run_bench("experiment=smoke", f"paths.cache={smoke_root / '.cache'}", "noise.rate=0.4", "seed=100",
              "tuning=tune_smoke/oracle", *ckpt, root=tmp_path)
    final = [json.loads(p.read_text()) for p in (tmp_path / "results" / "cells").glob("*/record.json")]
    final = [r for r in final if r["seed"] == 100]
    pick = next(r for r in rows if r["criterion"] == "oracle")
    assert len(final) == 1 and final[0]["hp_source"]["tuning"] == "tune_smoke/oracle"
    assert final[0]["hp_source"]["checkpoint"] == pick["checkpoint"] and len(final[0]["curve"]) == 2
    assert final[0]["config"]["train"]["learning_rate"] == pick["train.learning_rate"]


def test_a_resumed_tuning_sweep_keeps_one_job_row_per_cell(tmp_path):
    """Each resumption launches every job again (their cells skipped): jobs.jsonl keeps one row per cell, the latest,
    so it does not grow with every run; a job whose cell id changed (a new code version) keeps both rows."""
    from bench.core.files import read_jsonl
    from bench.sweep.sweeper import append_jobs

    path = tmp_path / selection.JOBS
    job = {"loss": "dpo", "condition": "c", "point": {"train.learning_rate": 1e-4}, "seed": 0, "cell_id": "a"}
    other = {**job, "seed": 1, "cell_id": "b"}
    append_jobs(path, [{**job, "status": "ok"}, {**other, "status": "ok"}])
    for _ in range(3):
        append_jobs(path, [{**job, "status": "skipped"}, {**other, "status": "skipped"}])
    assert [(r["cell_id"], r["status"]) for r in read_jsonl(path)] == [("a", "skipped"), ("b", "skipped")]
    append_jobs(path, [{**job, "cell_id": "a2", "status": "ok"}])
    assert [r["cell_id"] for r in read_jsonl(path)] == ["a", "b", "a2"]


def test_the_report_marks_a_selection_with_no_scores_yet_instead_of_showing_the_defaults_as_a_pick():
    import pandas as pd

    from bench.report.tuning import _plan_blocks

    plan = {"sweep": "t", "losses": ["dpo"], "conditions": [{}, {}], "seeds": [0], "criteria": ["oracle"],
            "lr": [1e-4, 2e-4], "budgets": {"dpo": 2}}
    rows = pd.DataFrame([{"loss": "dpo", "noise": "random_flip", "rate": r, "criterion": "oracle",
                          "train.learning_rate": 2e-4, "val_score": v, "at_edge": True, "edge_keys": "train.learning_rate"}
                         for r, v in ((0.0, 0.3), (0.4, float("nan")))])
    blocks = _plan_blocks(plan, rows, pd.DataFrame(), None)
    text = next(b[1] for b in blocks if b[0] == "p")
    table = next(b[1] for b in blocks if b[0] == "table")
    assert "1 of the 2 selections have no validation score yet" in text and "1 of 2 picks sit at an edge" in text
    assert list(table["oracle"]) == ["learning_rate 0.0002*", "no scores yet"]
