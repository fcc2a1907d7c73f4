"""`make verdict` runs the verdict study's sweeps one after another for many hours: a typo in one of them would show
only when its turn came. Every sweep it runs composes, and every config it names builds its parts."""
import shlex
import subprocess

from bench.cell.parts import build_parts
from bench.config.compose import compose
from bench.sweep.precheck import precheck
from conftest import ROOT


def _sweeps(target: str) -> list[list[str]]:
    out = subprocess.run(["make", "-n", target, "PY=python"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [shlex.split(line.split("bench/run.py", 1)[1]) for line in out.splitlines() if "bench/run.py -m" in line]


def test_every_sweep_of_make_verdict_composes_and_builds():
    sweeps = _sweeps("verdict")
    assert len(sweeps) >= 15
    assert all("-m" in argv for argv in sweeps)
    names = set()
    for argv in sweeps:
        assert precheck(argv) == 0, argv
        # the values a sweep will give its cells come from its tuning selection (not there yet): the rest builds
        overrides = [a for a in argv if a != "-m" and not a.startswith(("hydra", "tuning="))]
        losses = [a.split("=", 1)[1].strip("[]") for a in argv if a.startswith("hydra.sweeper.losses=")]
        overrides += [f"loss={losses[0]}"] if losses and "," not in losses[0] else []  # a method arm's one loss
        parts = build_parts(compose(overrides))
        names.add((parts.header.names.get("sweep"), parts.method.name))
    assert {"verdict_tune", "verdict", "verdict_secondary"} <= {s for s, _ in names}
    assert {"standard", "clean", "ropo_full"} <= {m for _, m in names}
