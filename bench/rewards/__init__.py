"""Reward models, whatever they serve: a training input (the scorer), the tuning proxy, a method's ensemble or
detector, an evaluator.

- ``load``: the one way to get one, ``load(recipe, where, cache_root, pairs)`` (``bench.rewards.load``);
- ``model``: a loaded reward model (``RewardModel``: ``score``, ``pairwise_accuracy``) and the one encoding its
  training and scoring share;
- ``embedded``: the embedded model, trained on the pairs the caller names and cached;
- ``backbones``: the encoders it can be trained on (a plug-in kind: a new backbone is one class there).

Its recipe, with what of it counts for a cell's identity, is ``bench.config.schema.RewardModelRecipe``, the schema
of ``conf/evaluator/reward_model.yaml`` that every use composes.
"""
