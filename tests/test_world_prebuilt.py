"""The shipped default world (bench/world/prebuilt.py): the default config's world is unpacked, never rebuilt, and
nothing else is."""
from __future__ import annotations

import dataclasses
import json
import tarfile

import pytest

from bench.world import build as world_build
from bench.world import prebuilt
from bench.world.ship import default_world


def test_the_default_world_is_shipped_under_its_current_key():
    """A change to the world's code or the default settings moves the key: then `python -m bench.world.ship
    --write` must ship the new world (and drop the old archive)."""
    key = world_build.world_key(*default_world())
    assert prebuilt.archive_of(key).exists(), f"no shipped world for key {key}: python -m bench.world.ship --write"
    assert sorted(p.name for p in prebuilt.FOLDER.glob("*.tar.gz")) == [f"{key}.tar.gz"]  # no stale archive


def test_loading_the_default_world_unpacks_it(tmp_path, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("the shipped world was built instead of unpacked")

    monkeypatch.setattr(world_build, "build", no_build)
    monkeypatch.delenv("PREFNOISE_NO_PREBUILT", raising=False)
    monkeypatch.delenv("PREFNOISE_NO_CACHE", raising=False)
    data, model = default_world()
    w = world_build.load(data, model, tmp_path)
    assert w.path.name == world_build.world_key(data, model) and (w.reference_path / "model.safetensors").exists()
    with tarfile.open(prebuilt.archive_of(w.path.name)) as tar:
        assert json.loads(tar.extractfile("meta.json").read()) == w.meta
        assert len(w.rows("train_pairs")) == sum(1 for _ in tar.extractfile("train_pairs.jsonl"))


@pytest.mark.parametrize("env", ["PREFNOISE_NO_PREBUILT", "PREFNOISE_NO_CACHE"])
def test_the_build_is_still_there_when_asked_for(tmp_path, monkeypatch, env):
    monkeypatch.setenv(env, "1")
    assert not prebuilt.unpack(world_build.world_key(*default_world()), tmp_path)
    assert not any(tmp_path.iterdir())


def test_another_world_is_built(tmp_path):
    data, model = default_world()
    assert not prebuilt.unpack(world_build.world_key(dataclasses.replace(data, seed=5), model), tmp_path)
