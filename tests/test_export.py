"""Exports (bench/export.py: AlpacaEval model outputs) and ``train.save_model`` (bench/cell/saved.py), on the
smoke world: both off by default; the files AlpacaEval reads, with its own loader where alpaca-eval is importable
(``alpaca_eval.utils.load_or_convert_to_dataframe``; in 0.6.6 it is ``pandas.read_json`` for a ``.json`` file, which
is what runs otherwise), one output per instruction and one generator per file; the saved policy and its card.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bench import export
from bench.core.records import iter_records, write_record
from conftest import run_bench

COLUMNS = {"instruction", "output", "generator", "dataset"}


def alpaca_eval_load(path):
    """AlpacaEval's own loader of model outputs when alpaca-eval is importable, else what it runs for ``.json``."""
    try:
        from alpaca_eval.utils import load_or_convert_to_dataframe
    except ImportError:  # not installed, or an alpaca-eval that needs pkg_resources on a newer setuptools
        return pd.read_json(path)
    return load_or_convert_to_dataframe(path)


def _check_alpaca_eval_file(path, n_rows=None, one_per_instruction=True):
    df = alpaca_eval_load(path)
    assert COLUMNS <= set(df.columns), df.columns
    assert df["generator"].nunique() == 1  # AlpacaEval names the model by it (get_generator_name)
    for col in COLUMNS:
        assert df[col].map(lambda v: isinstance(v, str)).all(), col
    assert (df["instruction"].str.len() > 0).all()
    if one_per_instruction:
        assert df["instruction"].is_unique
    if n_rows is not None:
        assert len(df) == n_rows
    return df


def test_a_cells_outputs_in_alpaca_evals_format(smoke_root, tmp_path):
    (rec,) = [r for r in iter_records(smoke_root / "results") if r.get("sweep") == "smoke"]
    cell = smoke_root / "results" / "cells" / rec["cell_id"]
    assert not (cell / "model").exists() and not (smoke_root / "results" / "export").exists()  # both off by default
    written = export.export(smoke_root / "results", tmp_path / "out", sweep="smoke")
    assert sorted(p.name for p in written) == sorted([f"DPO_random_flip@0.2_seed_0_{rec['cell_id']}.json",
                                                      "reference__world__tiny.json"])
    samples = [json.loads(line) for line in (cell / "samples.jsonl").read_text().splitlines()]
    first = {}
    for s in samples:
        first.setdefault(s["prompt"], s)
    mine = _check_alpaca_eval_file(written[0] if "seed" in written[0].name else written[1], len(first))
    assert mine["generator"].iloc[0] == "prefnoise/DPO random_flip@0.2 seed 0"
    assert (mine["dataset"] == "prefnoise/world").all() and (mine["cell_id"] == rec["cell_id"]).all()
    assert list(mine["output"]) == [first[p]["policy"] for p in mine["instruction"]]
    ref = _check_alpaca_eval_file(tmp_path / "out" / "reference__world__tiny.json", len(first))
    assert list(ref["instruction"]) == list(mine["instruction"])  # the same prompts: a head-to-head, row by row
    assert list(ref["output"]) == [first[p]["reference"] for p in ref["instruction"]]
    assert ref["generator"].iloc[0] == "prefnoise/reference tiny"


def _fake_cell(results, seed, prompts):
    """A complete cell's record and evaluation samples (two samples per prompt), as a cell writes them."""
    rec = {"cell_id": f"c{seed}", "sweep": "s", "status": "ok", "loss": "dpo", "loss_label": "DPO",
           "noise": "random_flip", "rate": 0.2, "seed": seed, "data": "world", "model": "tiny", "metrics": {}}
    write_record(results, rec)
    rows = [{"prompt": p, "policy": f"answer {k} of seed {seed} to {p}", "reference": f"ref {k} to {p}"}
            for p in prompts for k in range(2)]
    (results / "cells" / rec["cell_id"] / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_one_file_per_arm_holds_every_seed(tmp_path):
    prompts = ["Write a review.", "Describe the kettle."]
    for seed in (0, 1):
        _fake_cell(tmp_path, seed, prompts)
    written = export.export(tmp_path, tmp_path / "out", per="arm")
    assert sorted(p.name for p in written) == ["DPO_random_flip@0.2.json", "reference__world__tiny.json"]
    arm = _check_alpaca_eval_file(tmp_path / "out" / "DPO_random_flip@0.2.json", 4, one_per_instruction=False)
    assert sorted(arm["seed"]) == [0, 0, 1, 1] and arm["generator"].iloc[0] == "prefnoise/DPO random_flip@0.2"
    assert set(arm["output"]) == {f"answer 0 of seed {s} to {p}" for s in (0, 1) for p in prompts}
    assert export.main(["--results", str(tmp_path), "--out", str(tmp_path / "cli"), "--where", "seed=1"]) == 0
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["DPO_random_flip@0.2_seed_1_c1.json",
                                                                    "reference__world__tiny.json"]
    with pytest.raises(ValueError, match="per='run'; valid: 'cell' or 'arm'"):
        export.export(tmp_path, per="run")


@pytest.mark.slow
def test_save_model_keeps_the_policy_and_its_card(smoke_root, tmp_path):
    """``train.save_model=true`` on the smoke world: the whole trained model (full fine-tuning) with its tokenizer
    and a card naming the cell, its noise and metrics; it loads back and generates; the cell id is unchanged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (plain,) = [r for r in iter_records(smoke_root / "results") if r.get("sweep") == "smoke"]
    run_bench("experiment=smoke", "train.save_model=true", root=smoke_root, results=tmp_path / "results",
              check=True)
    (rec,) = list(iter_records(tmp_path / "results"))
    assert rec["cell_id"] == plain["cell_id"]  # saving is not part of a cell's identity
    folder = tmp_path / "results" / "cells" / rec["cell_id"] / "model"
    assert rec["saved_model"]["kind"] == "full model" and (folder / "model.safetensors").exists()
    card = (folder / "README.md").read_text()
    for text in (rec["cell_id"], "random_flip at rate 0.2 (seed 0)", "gold_reward", "## Config (resolved)",
                 f"{rec['metrics']['gold_reward']:.6g}", "library_name: transformers"):
        assert text in card, text
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    out = model.generate(**tok(["Write a positive review of the kettle.\n"], return_tensors="pt"), max_new_tokens=4,
                         do_sample=False)
    assert out.shape[1] > 0
