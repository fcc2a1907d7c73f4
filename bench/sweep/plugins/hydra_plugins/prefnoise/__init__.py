"""Hydra takes sweepers only from the ``hydra_plugins`` namespace (it checks the class's module), so these two
name the project's sweepers there; ``bench/run.py`` puts ``bench/sweep/plugins`` on the import path. The code is
``bench.sweep.sweeper``."""
from bench.sweep import sweeper


class CellsSweeper(sweeper.CellsSweeper):
    __doc__ = sweeper.CellsSweeper.__doc__


class TuneSweeper(sweeper.TuneSweeper):
    __doc__ = sweeper.TuneSweeper.__doc__
