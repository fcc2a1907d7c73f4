"""data=hf: local JSONL/Parquet in plain or conversational form, mapped columns, clear errors."""
import json

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


@pytest.mark.slow
def test_cell_on_local_conversational_file_and_local_model_folder(smoke_root, tmp_path):
    """data=hf + model=local end to end: an UltraFeedback-shaped JSONL and a model folder, no hub."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.core import records
    from conftest import run_bench

    ref = next((smoke_root / ".cache" / "world").glob("*/reference"))
    folder = tmp_path / "my-model"
    tok = AutoTokenizer.from_pretrained(ref)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(ref).save_pretrained(folder)
    path = _jsonl(tmp_path / "uf.jsonl", ultrafeedback_rows(40))
    run_bench(
        "data=hf", f"data.path={path}", "data.eval_fraction=0.25", "model=local", f"model.path={folder}",
        "evaluator=[]", "train.max_steps=2", "train.batch_size=4", "eval.max_new_tokens=8", root=tmp_path,
    )
    (rec,) = list(records.iter_records(tmp_path / "results"))
    assert rec["status"] == "ok" and rec["data"] == "hf" and rec["model"] == "local"
    assert {"length", "kl", "implicit_acc"} <= set(rec["metrics"])
    assert rec["n_train_pairs"] + 0 > 0
