"""A cell's identity says what determines its result and nothing else (bench/cell/identity.py), and bad config
values fail at start-up with one line, before any data or model is loaded (bench/sweep/precheck.py)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest
from omegaconf import OmegaConf, open_dict

from bench.cell import identity as ident
from bench.config import schema
from bench.core import options
from conftest import ROOT, RUN, run_bench


def _cfg(*overrides: str):
    from bench.config.compose import compose

    return compose(["experiment=smoke", *overrides])


def cid(*overrides: str) -> str:
    return ident.cell_id(_cfg(*overrides))


# ------------------------------------------------------------------------------------------------ what is in it
def test_where_and_how_a_cell_runs_is_not_its_identity():
    base = cid()
    for o in ("threads=2", "paths.root=/somewhere/else", "paths.cache=/shared/cache", "train.logging_steps=1",
              "train.ref_batch_size=7", "train.progress=false", "train.print_logs=true", "train.device=cpu",
              "shared_ref_cache=false", "resume=false", "sweep=another_name", "logger=wandb"):
        assert cid(o) == base, o
    judge = cid("evaluator=[gold,llm_judge]")
    for o in ("evaluator.llm_judge.max_concurrency=1", "evaluator.llm_judge.timeout=5", "evaluator.llm_judge.progress=false",
              "evaluator.llm_judge.cache_dir=/elsewhere", "evaluator.llm_judge.max_retries=0",
              "paths.cache=/moved"):  # the judge's cache path follows paths.cache: still the same cell
        assert cid("evaluator=[gold,llm_judge]", o) == judge, o
    assert cid("evaluator=[gold,reward_model]", "evaluator.reward_model.batch_size=3") == cid(
        "evaluator=[gold,reward_model]")


def test_what_determines_the_result_is_in_it():
    base = cid()
    for o in ("train.learning_rate=1e-4", "seed=1", "loss=ipo", "loss.beta=0.2", "noise.rate=0.4", "noise=length_biased",
              "eval.temperature=0.5", "data.n_train_prompts=40", "model.sft.steps=41", "train.num_gpus=2",
              "method=ropo_full", "evaluator=[gold,reward_model]", "evaluator.llm_judge.model=x"):
        if o.startswith("evaluator.llm_judge"):
            assert cid("evaluator=[gold,llm_judge]", o) != cid("evaluator=[gold,llm_judge]"), o
        else:
            assert cid(o) != base, o
    assert cid("method=ropo_full", "method.rounds=2") != cid("method=ropo_full")
    assert cid("method=ropo_full", "method.score_batch_size=8") == cid("method=ropo_full")  # batching only


def test_the_neutral_method_leaves_no_trace():
    cfg = OmegaConf.create(OmegaConf.to_container(_cfg()))
    with open_dict(cfg):
        del cfg["method"]
    assert ident.cell_id(cfg) == cid()  # no method node: the standard one


def test_a_new_option_at_its_neutral_value_keeps_old_ids_and_a_changed_default_does_not(monkeypatch):
    old_ids = {o: cid(*filter(None, [o])) for o in ("", "seed=1", "train.learning_rate=1e-4")}
    extended = dataclasses.make_dataclass(
        "TrainConfig", [("label_smoothing", float, options.option("a new option", neutral=0.0))], bases=(schema.TrainConfig,))
    monkeypatch.setattr(ident, "TrainConfig", extended)
    for o, old in old_ids.items():
        assert cid(*filter(None, [o, "+train.label_smoothing=0.0"])) == old  # at its neutral value: old cells found
        # the option's default later changes to 0.1: every cell with it is new, none reuses a stale record
        assert cid(*filter(None, [o, "+train.label_smoothing=0.1"])) != old
    assert ident.IDENTITY_VERSION >= 2


def test_a_bad_value_still_has_an_id_so_its_failure_is_recorded():
    assert cid("train.learning_rate=-1") != cid() and cid("seed=abc") != cid()


@pytest.mark.slow
def test_threads_and_a_moved_root_find_the_cell_complete(tmp_path, smoke_root):
    root = tmp_path / "a"
    shutil.copytree(smoke_root / ".cache", root / ".cache")
    run_bench("experiment=smoke", "eval.max_new_tokens=4", root=root)
    proc = run_bench("experiment=smoke", "eval.max_new_tokens=4", "threads=2", root=root)
    assert "already complete: skipped" in proc.stdout
    moved = tmp_path / "b"
    shutil.move(str(root), moved)  # the whole project root moves (another machine, another disk)
    proc = run_bench("experiment=smoke", "eval.max_new_tokens=4", root=moved)
    assert "already complete: skipped" in proc.stdout
    proc = run_bench("experiment=smoke", "eval.max_new_tokens=4", "train.learning_rate=1e-4", root=moved)
    assert "already complete" not in proc.stdout and "[prefnoise] ok" in proc.stdout


# ------------------------------------------------------------------------------------------------ start-up checks
BAD = [
    ("train.learning_rate=-1", "train.learning_rate=-1.0 is out of range; valid: (0, inf)"),
    ("train.batch_size=0", "train.batch_size=0 is out of range; valid: an integer in [1, inf)"),
    ("seed=abc", "seed='abc' has the wrong type; valid: an integer in [0, inf)"),
    ("eval.temperature=-1", "eval.temperature=-1.0 is out of range; valid: [0, inf)"),
    ("train.learnig_rate=1e-4", "train.learnig_rate: unknown key 'learnig_rate'. Did you mean 'learning_rate'?"),
    ("+train.learnig_rate=1e-4", "train.learnig_rate: unknown key 'learnig_rate'. Did you mean 'learning_rate'?"),
    ("train.lr_scheduler=cosin", "train.lr_scheduler='cosin' is not a valid choice; valid: 'linear' or 'cosine'"),
    ("data.n_train_prompts=0", "data.n_train_prompts=0 is out of range"),
    ("model=local", "model.path is not set"),
    ("loss=dpoo", "loss=dpoo: unknown loss option 'dpoo'"),
    ("loss.beta=-1", "loss 'dpo': beta=-1 is out of range"),
    ("method=ropo_full", "method=ropo_full is ROPO's method and uses ROPO's loss"),
    ("method.rounds=2", "method.rounds: unknown key 'rounds'"),  # the standard method has no settings
    ("noise.strenght=2", "noise.strenght: unknown key"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_fails_in_one_line_before_anything_loads(tmp_path, override, message):
    proc = run_bench(override, root=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("prefnoise: config error: "), proc.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / ".cache").exists() and not (tmp_path / "results").exists()  # no data, no model, no record


def test_a_traceback_only_when_asked(tmp_path):
    env = {**os.environ, "PREFNOISE_ROOT": str(tmp_path), "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([*RUN, "train.learning_rate=-1"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "train.learning_rate" in proc.stderr


# ------------------------------------------------------------------------------------------------ the scorer
def test_no_scorer_and_an_unread_scorer_leave_no_trace():
    base = cid()
    assert cid("scorer=none") == base
    for o in ("scorer=oracle", "scorer=proxy"):  # loss=dpo reads no scores: the scorer is not used, nor in the id
        assert cid(o) == base, o
    assert cid("loss=sppo") == cid("loss=sppo", "scorer=none")  # the hard variant reads none either


def test_a_read_scorer_is_in_the_identity_but_its_batching_is_not():
    proxy, oracle = cid("loss=madpo"), cid("loss=madpo", "scorer=oracle")
    assert proxy == cid("loss=madpo", "scorer=proxy") and proxy != oracle
    assert cid("loss=madpo", "scorer.rm.batch_size=3", "scorer.rm.device=cpu") == proxy
    assert cid("loss=madpo", "scorer.rm.train.max_steps=7") != proxy
    assert cid("loss=sppo", "loss.variant=single") != cid("loss=sppo", "loss.variant=single", "scorer=oracle")
    assert cid("method=curriculum", "method.by=ref_margin") == cid("method=curriculum", "method.by=ref_margin",
                                                                    "scorer=oracle")  # ref_margin reads no scores


@pytest.mark.parametrize("overrides, message", [
    (("loss=madpo", "scorer=none"), "scorer=none, but loss=madpo reads per-response scores"),
    (("method=self_play", "scorer=none"), "scorer=none, but method=self_play reads per-response scores"),
    (("loss=madpo", "scorer=rm"), "scorer.rm.path="),
    (("loss=madpo", "scorer.name=orcale"), "Did you mean 'oracle'"),
    (("loss=ncdpo", "loss.per_annotator=true"), "gives the pairs no annotator ids"),
    (("loss=madpo", "scorer.rm.path=/x"), "the proxy scorer is the embedded reward model"),
])
def test_scorer_mistakes_fail_at_start_up(overrides, message):
    from bench.cell.parts import build_parts
    from bench.core.options import ConfigError

    with pytest.raises(ConfigError, match=None) as e:
        build_parts(_cfg(*overrides))
    assert message.lower() in str(e.value).lower(), str(e.value)


def test_the_oracle_scorer_is_said_in_the_label():
    from bench.cell.parts import build_parts

    assert build_parts(_cfg("loss=madpo")).label == "MADPO"
    assert build_parts(_cfg("loss=madpo", "scorer=oracle")).label == "MADPO [oracle scorer]"
    assert build_parts(_cfg("loss=dpo", "scorer=oracle")).label == "DPO"  # unread: no tag, not used


def test_the_ids_of_the_studies_configs_do_not_move():
    """Pinned when recorded (tests/data/cell_ids.json): a change that moves them makes every study on disk stale."""
    import json
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from pin_cell_ids import ids

    pinned = json.loads((ROOT / "tests" / "data" / "cell_ids.json").read_text())
    moved = {name: (entry["cell_id"], got) for name, got in ids().items()
             for entry in [pinned[name]] if entry["cell_id"] != got}
    assert len(pinned) >= 100 and not moved, moved


def test_a_methods_non_identity_options_come_from_its_schema_alone():
    """One source: the fields a method's options mark ``identity=False`` (nested ones too: ``rm.device``) are the
    options a cell id leaves out; changing one keeps the id, changing any other moves it."""
    from bench import methods
    from bench.config.compose import group_node
    from bench.core.options import not_in_identity

    derived = {}
    for name in methods.names():
        cls = methods.KIND.lookup(name)
        derived[name] = not_in_identity(cls.Options)
        node = {"name": name, **methods.KIND.defaults(name)}
        kept = cls.identity(node)
        assert {k for k in derived[name] if "." not in k} == set(node) - set(kept), name
    assert derived["ropo_full"] == ("score_batch_size",) and "rm.device" in derived["rm_ensemble"]
    assert group_node("method", "rm_ensemble")["rm"]["device"] == "auto"
    base = cid("method=curriculum")
    assert cid("method=curriculum", "method.score_batch_size=7") == base
    assert cid("method=curriculum", "method.stages=4") != base
    assert cid("method=rm_ensemble", "method.rm.device=cpu") == cid("method=rm_ensemble")


@pytest.mark.parametrize("regime,condition", [("long", "data.n_train_prompts=1500 train.epochs=8"),
                                              ("wide", "data.n_train_prompts=6000 train.epochs=2"),
                                              ("large", "data.n_train_prompts=12000 train.epochs=1")])
def test_a_regime_preset_is_the_scans_cell(regime, condition):
    """``regime=<name>`` (conf/regime/) sets what the scan's condition set: the same cells, so a study in a preset
    reuses the scan's records where they coincide."""
    from bench.config.compose import compose

    rest = ["loss=ropo", "noise.rate=0.4", "train.learning_rate=5e-5", "seed=2"]
    scan = compose(["experiment=regimes", *condition.split(), *rest])
    assert ident.cell_id(compose([f"regime={regime}", *rest])) == ident.cell_id(scan)
    assert ident.cell_id(compose(["regime=default", *rest])) == ident.cell_id(compose(rest))
