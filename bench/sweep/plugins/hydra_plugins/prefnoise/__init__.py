"""Hydra takes sweepers and launchers only from the ``hydra_plugins`` namespace (it checks the class's module), so
these name the project's sweepers and SLURM launcher there; ``bench/run.py`` puts ``bench/sweep/plugins`` on the
import path. The code is ``bench.sweep.sweeper`` and ``bench.sweep.launcher``."""
from bench.sweep import launcher, sweeper


class CellsSweeper(sweeper.CellsSweeper):
    __doc__ = sweeper.CellsSweeper.__doc__


class TuneSweeper(sweeper.TuneSweeper):
    __doc__ = sweeper.TuneSweeper.__doc__


class SlurmLauncher(launcher.SlurmLauncher):
    __doc__ = launcher.SlurmLauncher.__doc__
