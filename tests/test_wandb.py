"""W&B logging: one offline run per cell, read back from its own files (no server), and the saved dashboard."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from bench.cell import wandb_log
from bench.core import records
from conftest import ROOT, run_bench

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAKE_KEY = "local-0123456789abcdef0123456789abcdef01234567"  # must never land in a config, a record or a run file
WANDB = str(Path(sys.executable).parent / "wandb")


def _inspect(run_dir: Path, *flags: str) -> str:
    out = subprocess.run([WANDB, "leet", "inspect", *flags, "--json", str(run_dir)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _read_run(run_dir: Path) -> dict:
    """Summary, config, exit code from `--summary`; group, job type and per-step history from the record stream."""
    run = json.loads(_inspect(run_dir, "--summary"))
    rows = [json.loads(line) for line in _inspect(run_dir).splitlines() if line.strip()]
    meta = next(r["run"] for r in rows if r.get("type") == "run")
    run["group"], run["job_type"] = meta.get("run_group"), meta.get("job_type")
    run["history"] = [r["history"]["item"] for r in rows if r.get("type") == "history"]
    return run


@pytest.mark.slow
def test_offline_runs_one_per_cell_with_group_tags_curves_and_metrics(tmp_path, smoke_root, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline must be the default, not something the test set
    proc = run_bench("-m", "experiment=smoke", "eval.max_new_tokens=4", f"paths.cache={smoke_root / '.cache'}",
                     "logger=wandb", "sweep=wbtest", "noise.rate=0.2,1.5", root=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]  # the rate-1.5 cell fails; the other cell still ran
    run_dirs = sorted((tmp_path / "results" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 2  # one run per cell: the second job did not log into the first job's run
    runs = {r["summary"].get("status"): r for r in map(_read_run, run_dirs)}
    assert set(runs) == {"ok", "failed"}

    ok = runs["ok"]
    rec = next(r for r in records.iter_records(tmp_path / "results") if r["status"] == "ok")
    assert ok["state"] == "finished" and ok["exit_code"] == 0 and ok["project"] == "prefnoise"
    assert ok["group"] == "wbtest" and ok["job_type"] == "dpo"
    assert {"noise=random_flip", "rate=0.2"} <= set(ok["tags"])
    assert ok["summary"]["cell_id"] == rec["cell_id"]
    for m in ("gold_win_rate", "gold_gain", "kl", "length"):
        assert ok["summary"][m] == pytest.approx(rec["metrics"][m])
    cfg = ok["config"]
    flat = wandb_log.flatten({k: (v.get("value", v) if isinstance(v, dict) else v) for k, v in cfg.items()})
    assert flat["loss.name"] == "dpo" and flat["noise.rate"] == 0.2 and flat["sweep"] == "wbtest"
    steps = [h for h in ok["history"] if "train/loss" in h]
    assert len(steps) == rec["train_steps"] == 2  # per-step curves from TRL's report_to=wandb, in the same run
    assert {"train/rewards/accuracies", "train/rewards/margins"} <= set(steps[0])

    bad = runs["failed"]
    assert bad["exit_code"] == 1 and bad["job_type"] == "dpo" and "rate=1.5" in bad["tags"]
    assert bad["summary"]["error/type"] == "ConfigError"  # the one config error (a ValueError)

    for path in [*(p for d in run_dirs for p in d.rglob("*") if p.is_file()),
                 *(tmp_path / "results" / "cells").rglob("*.json")]:
        assert FAKE_KEY.encode() not in path.read_bytes(), path


def _cfg(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["logger=wandb", "paths.root=/tmp/pn", *overrides])
    return cfg


def test_run_settings_scrub_secrets_and_pick_the_mode(monkeypatch):
    cfg = _cfg("loss=ropo", "noise=length_biased", "noise.rate=0.4", "sweep=s1", "+evaluator.x.api_key=sk-secret",
               "+logger.tags=[mine]")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    s = wandb_log.run_settings(cfg, "abcdef123456")
    assert (s["group"], s["job_type"], s["mode"], s["project"]) == ("s1", "ropo", "offline", "prefnoise")
    assert {"noise=length_biased", "rate=0.4", "mine"} <= set(s["tags"])
    assert s["dir"] == "/tmp/pn/results" and s["name"].startswith("ropo-length_biased-0.4-s0-")
    flat = wandb_log.flatten(s["config"])
    assert "evaluator.x.api_key" not in flat and "sk-secret" not in json.dumps(s["config"])
    assert flat["cell_id"] == "abcdef123456" and flat["loss.name"] == "ropo" and "hydra" not in s["config"]
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_log.mode(cfg) == "online"  # the user's environment says online
    with open_dict(cfg):
        cfg.logger.mode = "disabled"
    assert wandb_log.mode(cfg) == "disabled"  # the config wins over the environment
    assert wandb_log.run_settings(OmegaConf.merge(cfg, {"logger": {"mode": None}}), "x" * 12)["mode"] == "online"


def test_logger_none_opens_no_run():
    assert wandb_log.start(_cfg("logger=none"), "x" * 12) is None
    wandb_log.finish(None)  # a no-op


def test_dashboard_spec_plots_metrics_against_noise_rate_per_loss(tmp_path):
    pytest.importorskip("wandb_workspaces")
    from bench.report import dashboard

    out = tmp_path / "ws.json"
    assert dashboard.main(["--entity", "me", "--sweep", "wbtest", "--json", str(out)]) == 0
    spec = json.dumps(json.loads(out.read_text()))
    assert '"xAxis": "config:noise.value.rate"' in spec and '"yAxis": "summary:gold_win_rate"' in spec
    assert '"grouping": [{"section": "config", "name": "loss.value.name"}]' in spec  # one colour per loss
    assert "wbtest" in spec  # runs of that sweep only
    saved = json.loads((ROOT / "dashboards" / "prefnoise_workspace.json").read_text())
    assert saved["project"] == "prefnoise"  # the committed definition is a valid spec of the same shape


def test_scrub_keeps_ordinary_keys_that_mention_tokens():
    from bench.cell.wandb_log import scrub

    out = scrub({"eval": {"max_new_tokens": 48}, "j": {"api_key": "k", "hf_token": "t", "api_key_env": "OPENAI_API_KEY"}})
    assert out == {"eval": {"max_new_tokens": 48}, "j": {"api_key_env": "OPENAI_API_KEY"}}
