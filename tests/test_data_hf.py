"""data=hf: local JSONL/Parquet in plain or conversational form, mapped columns, clear errors."""
import json
import re

import pytest
from datasets import Dataset

from bench import data
from bench.data.hf import read


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def ultrafeedback_rows(n=20):
    rows = []
    for i in range(n):
        q = f"Question {i}: how do I boil water?"
        rows.append(
            {
                "prompt": q,
                "chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": f"Heat it to 100 C ({i})."}],
                "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": f"Freeze it ({i})."}],
                "score_chosen": 8.0,
                "score_rejected": 2.0,
            }
        )
    return rows


def hh_rows(n=20):
    return [
        {
            "chosen": f"\n\nHuman: Tell me fact {i}.\n\nAssistant: Water boils at 100 C.",
            "rejected": f"\n\nHuman: Tell me fact {i}.\n\nAssistant: No.",
        }
        for i in range(n)
    ]


def test_ultrafeedback_conversational_jsonl(tmp_path):
    ds = data.to_preference_form(read(_jsonl(tmp_path / "uf.jsonl", ultrafeedback_rows()), "train"), {})
    row = ds[0]
    assert row["prompt"] == [{"role": "user", "content": "Question 0: how do I boil water?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "Heat it to 100 C (0)."}]
    assert row["rejected"][0]["content"] == "Freeze it (0)."
    assert data.prompt_text(row["prompt"]).startswith("Question 0")


def test_hh_plain_transcripts_get_prompt_extracted(tmp_path):
    path = tmp_path / "hh.parquet"
    Dataset.from_list(hh_rows()).to_parquet(str(path))
    ds = data.to_preference_form(read(str(path), "train"), {"prompt": None})
    row = ds[3]
    assert row["prompt"].endswith("Assistant:") and "fact 3" in row["prompt"]
    assert row["chosen"].strip() == "Water boils at 100 C." and row["rejected"].strip() == "No."


def test_column_mapping(tmp_path):
    rows = [{"q": f"q{i}", "good": f"yes {i}", "bad": f"no {i}"} for i in range(5)]
    ds = data.to_preference_form(
        read(_jsonl(tmp_path / "m.jsonl", rows), "train"), {"prompt": "q", "chosen": "good", "rejected": "bad"}
    )
    assert ds[0] == {"prompt": "q0", "chosen": "yes 0", "rejected": "no 0"}


def test_missing_column_names_the_field(tmp_path):
    rows = [{"prompt": "p", "chosen": "a"}]
    with pytest.raises(ValueError, match="rejected"):
        data.to_preference_form(read(_jsonl(tmp_path / "x.jsonl", rows), "train"), {})


def test_empty_response_names_field_and_row():
    ds = Dataset.from_list([{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": " ", "rejected": "b"}])
    with pytest.raises(ValueError, match=r"empty response in column 'chosen' at row 1"):
        data.validate(ds, "data.path=x")


def test_unsupported_file_type(tmp_path):
    p = tmp_path / "pairs.csv"
    p.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"data.path=.*unsupported file type '.csv'"):
        read(str(p), "train")


def test_hub_name_offline_fails_clearly():
    with pytest.raises(ValueError, match="data.path='org/not-a-local-file'"):
        read("org/not-a-local-file", "train")


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def _local_model(smoke_root, tmp_path):
    """A model folder with a chat template, made from the smoke world's reference policy (no hub)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = next((smoke_root / ".cache" / "world").glob("*/reference"))
    folder = tmp_path / "my-model"
    tok = AutoTokenizer.from_pretrained(ref)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(ref).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("source", ["ultrafeedback", "hh"])
def test_a_real_data_shape_trains_and_is_scored_by_the_default_evaluator(source, smoke_root, tmp_path):
    """data=ultrafeedback / data=hh on local files of their exact shapes, model=local, no hub, and the evaluator
    the data source brings by default: a reward model trained on the data's validation split (no gold here)."""
    from bench.core import records
    from conftest import run_bench

    folder = _local_model(smoke_root, tmp_path)
    rows = ultrafeedback_rows(48) if source == "ultrafeedback" else hh_rows(48)
    path = _jsonl(tmp_path / f"{source}.jsonl", rows)
    run_bench(
        f"data={source}", f"data.path={path}", "data.eval_fraction=0.25", "data.val_fraction=0.25", "model=local",
        f"model.path={folder}", "train.max_steps=2", "train.batch_size=4", "eval.max_new_tokens=8",
        "evaluator.reward_model.train.max_steps=2", "evaluator.reward_model.max_length=64", root=tmp_path,
    )
    (rec,) = list(records.iter_records(tmp_path / "results"))
    assert rec["status"] == "ok" and rec["data"] == source and rec["model"] == "local"
    assert {"length", "kl", "implicit_acc"} <= set(rec["metrics"])
    assert list(rec["config"]["evaluator"]) == ["reward_model"] and "gold_reward" not in rec["metrics"]
    m = rec["metrics"]
    assert {"rm_reward", "rm_gain", "rm_win_rate"} <= set(m)
    assert m["rm_train_n"] >= 8 and m["rm_heldout_n"] > 0 and 0 <= m["rm_heldout_accuracy"] <= 1  # said, not gold
    assert rec["n_train_pairs"] > 0


@pytest.mark.slow
def test_data_errors_end_in_one_line_with_the_failed_record_kept(tmp_path):
    """A missing file, a malformed JSONL line, a missing column and an unreachable hub name: exit code 2, one line
    naming data.path (and the line), no traceback on stderr, the failed record present, the traceback in run.log."""
    from bench.core import records
    from conftest import run_bench

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b", "rej\n')
    nocol = _jsonl(tmp_path / "nocol.jsonl", [{"prompt": "a", "chosen": "b"}] * 4)
    cases = [(str(tmp_path / "missing.jsonl"), r"data\.path='.*missing\.jsonl': no such file; valid: "),
             (str(bad), r"data\.path='.*bad\.jsonl': line 2: not valid JSON .*; valid: one JSON object per line"),
             (nocol, r"missing column 'rejected' .*; have \['prompt', 'chosen'\]"),
             ("someorg/not-a-dataset", r"data\.path='someorg/not-a-dataset': not a local file and could not be "
                                       r"loaded from the hub .*; valid: ")]
    for i, (path, message) in enumerate(cases):
        root = tmp_path / f"r{i}"
        proc = run_bench("data=hf", f"data.path={path}", "model=smollm2_135m", root=root, check=False)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert len(lines) == 1 and lines[0].startswith("prefnoise: data error: "), proc.stderr[-3000:]
        assert re.search(message, lines[0]) and "Traceback" not in proc.stderr
        (rec,) = list(records.iter_records(root / "results"))
        assert rec["status"] == "failed" and rec["error"]["type"] == "DataError"
        assert rec["error"]["where"].startswith("data")
        log = re.search(r"traceback in (\S+run\.log)", lines[0]).group(1).rstrip(")")
        assert "Traceback" in open(log).read()


@pytest.mark.parametrize("overrides, message", [
    (["data=hf", "data.path=x.jsonl", "evaluator=[gold]"], r"evaluator=gold with data=hf: the gold reward exists only "
                                                           r"on data=world; valid here: evaluator=\[reward_model\]"),
    (["data=hf", "data.path=x.jsonl", "data.val_fraction=0"], r"evaluator\.reward_model\.path=embedded .* "
                                                              r"data\.val_fraction=0\.0 leaves none; valid: "),
])
def test_evaluators_the_data_cannot_serve_fail_at_start_up(overrides, message):
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.core.options import ConfigError

    with pytest.raises(ConfigError, match=message):
        build_parts(compose(["model=smollm2_135m", *overrides]))


def test_the_default_evaluator_follows_the_data_source():
    from bench.config.compose import compose

    assert list(compose([]).evaluator) == ["gold"]
    for source in ("hf", "hh", "ultrafeedback"):
        assert list(compose([f"data={source}", "data.path=x.jsonl"]).evaluator) == ["reward_model"]
    assert list(compose(["data=hf", "data.path=x.jsonl", "evaluator=[llm_judge]"]).evaluator) == ["llm_judge"]
