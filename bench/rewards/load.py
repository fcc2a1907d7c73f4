"""The one way to get a reward model, whatever it serves: a training input (the scorer), the tuning proxy, a
method's ensemble or detector, or an evaluator.

    loaded = load(recipe, "scorer.rm", cache_root, World(world_dir))       # the embedded one, trained and cached
    loaded = load(recipe, "evaluator.reward_model", cache_root)           # recipe.path: a folder or a hub name
    loaded.model.score(prompts, responses); loaded.meta; loaded.folder

``recipe`` is the typed recipe (``bench.config.schema.RewardModelRecipe``: ``path``, ``backbone``, ``max_length``,
``chat_template``, ``batch_size``, ``device``, ``train``; what of it counts for a cell's identity is declared there,
once). ``where`` names the recipe in the config, for errors. With ``path: embedded`` the model is trained on the
pairs the caller names (``bench.rewards.embedded``: ``World``, ``Heldout`` or ``Given``) and cached; with a folder
or a hub name it is loaded as it is (``meta`` and ``folder`` are then None).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.config.schema import RewardModelRecipe
from bench.core.options import ConfigError
from bench.models.devices import pick_device
from bench.rewards.embedded import EMBEDDED, Given, Heldout, World
from bench.rewards.model import RewardModel

__all__ = ["EMBEDDED", "Given", "Heldout", "Loaded", "World", "load"]


@dataclass
class Loaded:
    model: RewardModel
    meta: dict | None = None  # the embedded model's training meta (what it trained on, its held-out accuracy)
    folder: Path | None = None  # its cache folder


def load(recipe: RewardModelRecipe, where: str, cache_root, pairs: World | Heldout | Given | None = None) -> Loaded:
    """The reward model ``recipe`` describes (see the module docstring)."""
    device = pick_device(recipe.device, f"{where}.device")
    kw = dict(max_length=recipe.max_length, use_chat_template=recipe.chat_template, batch_size=recipe.batch_size,
              where=where)
    if recipe.path != EMBEDDED:
        return Loaded(RewardModel.load(str(recipe.path), device, **kw))
    if pairs is None:
        raise ConfigError(f"{where}.path=embedded trains its reward model on the embedded world's clean pairs or, on "
                          "other data, on the data's validation split, and there is neither here (data.val_fraction=0?);"
                          f" set {where}.path to a reward-model folder or hub name")
    folder = Path(pairs.ensure(cache_root, recipe, device, where))
    meta = json.loads((folder / "meta.json").read_text())
    return Loaded(RewardModel.load(str(folder / "model"), device, **kw), meta, folder)
