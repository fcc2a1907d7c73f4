"""Every config composes; bad input gets a clear error naming the field and the valid choices."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from conftest import ROOT, run_bench

CONF = ROOT / "conf"
GROUPS = ["data", "model", "loss", "method", "noise", "scorer", "evaluator", "experiment", "logger", "train", "eval",
          "regime"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_config_composes(group, option):
    override = f"{group}=[{option}]" if group == "evaluator" else f"{group}={option}"
    cfg = _compose(override)
    container = OmegaConf.to_container(cfg, resolve=False)
    assert container["loss"]["name"] and container["noise"]["name"]
    if group in ("loss", "noise", "data", "model", "method", "scorer"):
        presets = {"oracle_cleaner": "clean", "random_cleaner": "clean"}  # a method with settings of its own
        assert cfg[group].name == presets.get(option, option) or group == "data"


def test_defaults_are_the_documented_main_job():
    cfg = _compose()
    assert (cfg.data.name, cfg.model.name, cfg.loss.name, cfg.noise.name) == ("world", "tiny", "dpo", "random_flip")
    assert cfg.noise.rate == 0.2 and list(cfg.evaluator) == ["gold"]


@pytest.mark.parametrize("group", ["loss", "noise"])
def test_unknown_group_option_lists_valid_choices(group):
    with pytest.raises((MissingConfigException, ConfigCompositionException)) as err:
        _compose(f"{group}=foo")
    msg = str(err.value)
    assert "foo" in msg and all(o in msg for o in options(group))


def test_cli_unknown_loss_fails_with_choices(tmp_path):
    proc = run_bench("loss=foo", root=tmp_path, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "loss/foo" in out and "dpo" in out and "ropo" in out
    assert not (tmp_path / "results" / "cells").exists()  # nothing written for a config that does not compose


@pytest.mark.parametrize("rate", ["1.5", "-0.1"])
def test_rate_outside_unit_interval_names_the_field(tmp_path, rate):
    proc = run_bench(f"noise.rate={rate}", root=tmp_path, check=False)
    assert proc.returncode != 0
    assert "noise.rate" in proc.stdout + proc.stderr
    # it failed before building anything expensive
    assert not (tmp_path / ".cache" / "world").exists()
