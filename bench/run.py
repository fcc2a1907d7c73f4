"""Run one prefnoise cell, or a sweep of them with Hydra multirun.

    python bench/run.py                                        # DPO under 20% random flips on the embedded world
    python bench/run.py loss=ropo noise=length_biased noise.rate=0.4 seed=1
    python bench/run.py -m loss=ropo,dpo noise.rate=0,0.2,0.4  # a sweep: one cell per combination
    python bench/run.py experiment=smoke                       # a seconds-long end-to-end check
    make report                                                # tables, curves and report from results/

Every cell writes results/cells/<cell id>/record.json; re-running a sweep skips cells already complete.
A sweep goes on past a failed cell, prints a summary of failures at the end and exits non-zero if any failed.
A bad config value ends the run at once with one line naming the field (exit code 2).

    python bench/run.py -m hydra/launcher=parallel loss=ropo,dpo noise.rate=0,0.2,0.4   # 2 cells at a time
    python -m bench.sweep status                               # progress of the latest sweep, with an ETA
"""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: one thread per cell is fastest on CPUs

# As `python -m` would: the working directory is importable (your own plug-in packages live there), and this
# script's folder is not (its subpackages are bench.*, never top-level modules).
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
sys.path.insert(0, os.getcwd())
sys.path.insert(1, os.path.dirname(_here))  # this checkout's packages, not a copy installed elsewhere
sys.path.append(os.path.join(_here, "sweep", "plugins"))  # hydra_plugins.prefnoise: the project's sweepers

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from bench.sweep.job import run_job  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    return run_job(cfg)  # in a multirun a failed cell is recorded and the sweep goes on


if __name__ == "__main__":
    from bench.sweep.precheck import precheck

    code = precheck(sys.argv[1:])
    if code:
        sys.exit(code)
    main()
    from bench.sweep import exit_code

    sys.exit(exit_code())  # non-zero when some cell of the sweep failed
