"""The README's plug-in recipes, one of each kind (a loss, a noise injector, an evaluator, a method, a detector, a
selection rule), all written the one way (``bench.config.plugin``), run exactly as written: their files are taken
from the README, written into a user folder outside the project, and run through the CLI from that folder with no
PYTHONPATH. Broken plug-ins fail at start-up with one line naming the field."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

SECTION = "## Plug-ins"


def readme_recipes() -> tuple[dict[str, str], list[str]]:
    """({file path: text}, [command lines]) of the README's plug-in section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    section = section[: section.index("\n## ", len(SECTION))]
    files, commands = {}, []
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        if lang == "bash":
            commands += [line for line in body.splitlines() if line.startswith("python ")]
            continue
        named = [ln for ln in body.splitlines()[:2] if ln.startswith("# ") and "/" in ln and "@package" not in ln]
        if named:  # the file's path, in a comment on its first or second line
            files[named[0][2:].split()[0]] = body
    return files, commands


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("my_study")
    files, _ = readme_recipes()
    for rel, body in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    (folder / "mypkg" / "__init__.py").write_text("")
    return folder


def run_from(folder: Path, command: str, smoke_root: Path, *extra: str) -> subprocess.CompletedProcess:
    """A README command, run from the user's folder: the checkout's run.py, the smoke world for speed."""
    argv = command.split()
    assert argv[:2] == ["python", "../prefnoise/bench/run.py"], command
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PREFNOISE_ROOT")}
    env["TQDM_DISABLE"] = "1"
    args = [sys.executable, str(ROOT / "bench" / "run.py"), *argv[2:], "experiment=smoke",
            f"paths.cache={smoke_root / '.cache'}", *extra]
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (folder / "results" / "cells").glob("*/record.json")]


KINDS = ("losses", "noise", "evaluators", "methods", "detectors", "rules")


def test_readme_has_a_recipe_of_each_kind():
    files, commands = readme_recipes()
    assert {f"mypkg/{k}.py" for k in KINDS} <= set(files)
    assert {f"my_conf/{g}" for g in ("loss", "noise", "evaluator", "method")} <= {str(Path(f).parent) for f in files}
    assert len(commands) == 5 and all("hydra.searchpath=[file://my_conf]" in c for c in commands)


def test_every_recipe_is_written_the_one_way(user_folder):
    """Each kind's recipe is a subclass of its kind's base (a ``Plugin``), built by its kind's one builder from the
    user's class path; a bad option value is the one ``ConfigError``, naming the field."""
    code = """
import bench.losses, noise, evaluators, bench.methods
from bench.config.plugin import Plugin
from bench.core.options import ConfigError
from bench.methods import detectors
from bench.tune import criteria
built = [bench.losses.from_config({"_target_": "mypkg.losses.FocalDPO", "beta": 0.1}),
         noise.from_config({"_target_": "mypkg.noise.ShortLover", "rate": 0.2, "seed": 0}),
         evaluators.from_config({"_target_": "mypkg.evaluators.DistinctWords"}),
         bench.methods.from_config({"_target_": "mypkg.methods.Subsample"}),
         detectors.KIND.from_ref("mypkg.detectors.ShortRejected", where="method.detector"),
         criteria.get("mypkg.rules.NoisyPairs")]
assert all(isinstance(p, Plugin) for p in built), built
assert built[0].g == 2.0 and built[3].fraction == 0.5 and built[4].scale == 1.0
assert built[5].metric == "val_implicit_acc" and built[5].realistic
try:
    detectors.KIND.from_ref({"_target_": "mypkg.detectors.ShortRejected", "scale": -1}, where="method.detector")
except ConfigError as e:
    assert "scale=-1" in str(e), e
else:
    raise AssertionError("no ConfigError")
print("ok")
"""
    env = {**{k: v for k, v in os.environ.items() if k != "PREFNOISE_ROOT"}, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=user_folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "ok", proc.stderr[-3000:]


def test_each_recipe_runs_from_the_users_folder(user_folder, smoke_root):
    _, commands = readme_recipes()
    for command in commands:
        proc = run_from(user_folder, command, smoke_root)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    recs = {r["config"]["loss"]["name"] + "/" + r["noise"] + "/" + r["method"]: r for r in records(user_folder)}
    assert all(r["status"] == "ok" for r in recs.values())
    focal = recs["focal_dpo/random_flip/standard"]
    assert focal["loss_label"] == "Focal DPO" and focal["loss_params"] == {"beta": 0.1, "g": 2.0}
    short = recs["dpo/short_lover/standard"]
    from bench.core.counting import exact_count

    assert short["rate"] == 0.4 and short["noise_stats"]["n_flipped"] == exact_count(0.4, short["n_train_pairs"])
    clean = recs["dpo/random_flip/clean"]  # the user's detector, through method=clean
    assert clean["status"] == "ok" and "mypkg.detectors.ShortRejected" in json.dumps(clean["config"]["method"])
    sub = recs["dpo/random_flip/subsample"]
    assert sub["n_pairs_used"] == max(1, round(0.25 * sub["n_train_pairs"]))
    with_distinct = [r for r in recs.values() if "distinct_words" in r["metrics"]]
    assert len(with_distinct) == 1
    info = with_distinct[0]["metric_info"]
    assert info["distinct_words"] == {"higher_is_better": None, "compare": True, "evaluator": "distinct"}
    assert info["distinct_words_ref"]["compare"] is False and "gold_reward" in with_distinct[0]["metrics"]


BROKEN = {
    "loss": ("class Broken:\n    name = 'broken'\n", "missing needs_reference_model"),
    "noise": ("class Broken:\n    name = 'broken'\n\n    def __init__(self, **kw):\n        self.rate = kw['rate']\n",
              "noise-injector contract: missing target_rate, summary, __call__"),
    "evaluator": ("class Broken:\n    name = 'broken'\n", "evaluator contract: missing metrics, evaluate()"),
    "method": ("class Broken:\n    name = 'broken'\n", "method contract: missing train(ctx)"),
}


@pytest.mark.parametrize("group", list(BROKEN))
def test_a_broken_plugin_fails_at_start_up_naming_it(user_folder, smoke_root, group):
    code, expected = BROKEN[group]
    (user_folder / "mypkg" / f"broken_{group}.py").write_text(code)
    conf = user_folder / "my_conf" / group
    header = "# @package evaluator.broken\n" if group == "evaluator" else ""
    extra = "rate: 0.2\nseed: ${seed}\n" if group == "noise" else ""
    (conf / "broken.yaml").write_text(f"{header}_target_: mypkg.broken_{group}.Broken\nname: broken\n{extra}")
    choice = "evaluator=[gold,broken]" if group == "evaluator" else f"{group}=broken"
    proc = run_from(user_folder, f"python ../prefnoise/bench/run.py hydra.searchpath=[file://my_conf] {choice}",
                    smoke_root)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("prefnoise: config error:"), proc.stderr
    assert f"_target_='mypkg.broken_{group}.Broken'" in lines[0] and expected in lines[0]
