"""`make verdict` runs the verdict study's sweeps one after another for many hours: a typo in one of them would show
only when its turn came. Every sweep it runs composes, every config it names builds its parts, and every final
sweep takes its values from a tuning sweep that runs before it, under a criterion that sweep has."""
import shlex
import shutil
import subprocess

import pytest
from omegaconf import OmegaConf

from bench.cell.parts import build_parts
from bench.config.compose import compose
from bench.sweep.precheck import precheck
from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _sweeps(target: str) -> list[list[str]]:
    out = subprocess.run(["make", "-n", target, "PY=python"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [shlex.split(line.split("bench/run.py", 1)[1]) for line in out.splitlines() if "bench/run.py -m" in line]


def _value(argv: list[str], key: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(key + "=")), None)


def test_every_sweep_of_make_verdict_composes_and_builds():
    sweeps = _sweeps("verdict")
    assert len(sweeps) >= 15
    names = set()
    for argv in sweeps:
        assert precheck(argv) == 0, argv
        # the values a sweep will give its cells come from its tuning selection (not there yet): the rest builds
        overrides = [a for a in argv if a != "-m" and not a.startswith(("hydra", "tuning="))]
        losses = _value(argv, "hydra.sweeper.losses")
        overrides += [f"loss={losses.strip('[]')}"] if losses and "," not in losses else []  # a method arm's loss
        parts = build_parts(compose(overrides))
        names.add((parts.header.names.get("sweep"), parts.method.name))
    assert {"verdict_tune", "verdict", "verdict_secondary"} <= {s for s, _ in names}
    assert {"standard", "clean", "ropo_full"} <= {m for _, m in names}


def test_every_final_sweep_reads_a_tuning_sweep_that_ran_before_it_with_that_criterion():
    tuned: dict[str, tuple[str, list[str]]] = {}  # sweep -> (its loss list, its criteria)
    finals = 0
    for argv in _sweeps("verdict"):
        cfg = compose([a for a in argv if a != "-m" and not a.startswith("hydra")])
        losses = _value(argv, "hydra.sweeper.losses") or "default"
        if cfg.get("tuning"):
            sweep, criterion = cfg.tuning.split("/")
            assert sweep in tuned, f"{cfg.tuning}: no tuning sweep {sweep!r} runs before it"
            assert losses == tuned[sweep][0], f"{cfg.tuning}: tuned {tuned[sweep][0]}, the finals run {losses}"
            assert criterion in tuned[sweep][1], f"{cfg.tuning}: that sweep's criteria are {tuned[sweep][1]}"
            finals += 1
        elif _value(argv, "experiment") == "verdict_tune":
            criteria = OmegaConf.load(ROOT / "conf" / "experiment" / "verdict_tune.yaml").hydra.sweeper.criteria
            tuned[str(cfg.sweep)] = (losses, list(criteria))
    assert finals >= 10 and len(tuned) == 5


def test_every_cleaner_sweep_runs_after_the_dpo_sweep_whose_cells_it_borrows_at_rate_0():
    """A cleaner arm at flip rate 0 takes its DPO twin's results from that cell's record (bench.cell.borrow): the
    standard sweep of the same experiment (and, for finals, the same rule) must have run before it, or those cells
    would train."""
    from bench.cell.borrow import noise_rate
    from bench.cell.identity import NEUTRAL_PARTS, cell_id

    ran: dict[tuple, str] = {}  # (experiment, rule) of the standard sweeps so far: their DPO cell at rate 0, seed 0
    borrowing = 0
    for argv in _sweeps("verdict"):
        experiment, tuning = _value(argv, "experiment"), _value(argv, "tuning")
        rule = tuning.split("/")[1] if tuning else None
        overrides = [a for a in argv if a != "-m" and not a.startswith(("hydra", "tuning=", "sweep="))]
        losses = (_value(argv, "hydra.sweeper.losses") or "[dpo]").strip("[]").split(",")
        cell = [*overrides, f"loss={losses[0]}", "noise=random_flip", "noise.rate=0", "seed=0"]
        parts = build_parts(compose(cell))
        if parts.method.name == "standard":
            ran[(experiment, rule)] = cell_id(compose(cell))
        elif parts.method.trains_as_standard(noise_rate(parts.injector)):
            borrowing += 1
            assert (experiment, rule) in ran, f"{' '.join(argv)}: its DPO twins' sweep has not run before it"
            # the same values of train and loss then give the same cell as the DPO sweep's: its twin
            twin = cell_id({**parts.header.config, "method": dict(NEUTRAL_PARTS["method"])})
            assert twin == ran[(experiment, rule)], f"{' '.join(argv)}: its twin is not the DPO sweep's cell"
    assert borrowing >= 6  # three cleaner arms, tuned and in finals
