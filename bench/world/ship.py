"""Make or check the default world's archive (``bench.world.prebuilt``), which a fresh clone unpacks instead of
building the world.

    python -m bench.world.ship --write   # build the default world and write its archive, dropping stale ones
    python -m bench.world.ship --check   # build it afresh and compare every file with the archive's

Run ``--write`` after a change to the world's code or the default world's settings (a new key: the old archive
is no longer used, and a test says the default world has none).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench.config.compose import compose
from bench.config.schema import MODEL_KINDS, WorldData
from bench.config.typed import typed
from bench.core import progress
from bench.world.build import build, world_key
from bench.world.prebuilt import FOLDER, archive_of, digests, pack, unpack


def default_world() -> tuple[WorldData, object]:
    """The typed data and model settings of the default config (``python bench/run.py`` with no overrides)."""
    cfg = compose([])
    data = typed(WorldData, cfg.data, "data")
    model = typed(MODEL_KINDS[cfg.model.kind], cfg.model, "model")
    return data, model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="build the default world and write its archive")
    ap.add_argument("--check", action="store_true", help="build the default world afresh and compare")
    a = ap.parse_args(argv)
    progress.quiet_libraries()
    data, model = default_world()
    key = world_key(data, model)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "fresh"
        fresh.mkdir()
        build(fresh, data, model)
        if a.write:
            for stale in FOLDER.glob("*.tar.gz"):
                stale.unlink()
            print(f"wrote {pack(fresh, key)} ({archive_of(key).stat().st_size / 1e6:.1f} MB)")
            return 0
        shipped = Path(tmp) / "shipped"
        shipped.mkdir()
        if not unpack(key, shipped):
            print(f"no archive for the default world's key {key}: run --write")
            return 1
        a_d, b_d = digests(fresh), digests(shipped)
        differ = sorted(k for k in set(a_d) | set(b_d) if a_d.get(k) != b_d.get(k))
        print(f"world {key}: {len(a_d)} files; differ: {differ or 'none'} (meta.json holds build timings)")
        shutil.rmtree(shipped)
        return 0 if set(differ) <= {"meta.json"} else 1


if __name__ == "__main__":
    raise SystemExit(main())
