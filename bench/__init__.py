"""prefnoise: which preference-optimization loss still works when the labels are wrong?

Entry point: ``python bench/run.py`` (see its docstring). Modules:
- ``bench.registry``: small typed registries with did-you-mean errors, shared by losses, noise and evaluators.
"""
