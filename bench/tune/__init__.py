"""The tuning protocol: every loss tuned the same way, on the validation split only, under several selection rules.

- ``criteria``: the selection rules (``oracle`` and the realistic ones), each a validation metric to maximize
- ``space``: a loss's search space (``conf/search/<loss>.yaml``): the learning rate first, then the loss's knobs
- ``protocol``: one knob after another, per rule, replayed deterministically from scored points (``replay``)
- ``selection``: ``results/tuning/<sweep>/selection.csv`` from a tuning sweep's jobs and records
- ``apply``: a final sweep's ``tuning=<sweep>/<criterion>``: each cell takes its row's values, and says so

A tuning sweep is an ordinary Hydra multirun (``python bench/run.py -m experiment=tune``) through
``bench.sweep.sweeper.TuneSweeper``, on any launcher, with resume, failure isolation and W&B.
"""
