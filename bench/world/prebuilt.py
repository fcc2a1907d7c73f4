"""The default world, shipped with the code: a fresh clone's first cell unpacks it instead of building it.

Building the embedded world (the tiny reference policy's SFT, then its samples labelled by the gold reward) takes
80-120 s on one core, most of a first run's wait. The build is deterministic: rebuilt on this machine, every file
is the same bytes but ``meta.json``, whose build timings differ (``--check`` below). So the repository carries the
default world's folder as an archive named by its cache key, ``bench/world/prebuilt/<key>.tar.gz``, and
``bench.world.build.load`` unpacks it into the cache when that key is asked for. Any other world (other settings,
another reference model, a new ``WORLD_CODE_VERSION``) has another key and is built as before; so is every world
when ``PREFNOISE_NO_PREBUILT=1`` or the cache is off (``PREFNOISE_NO_CACHE=1``, which benchmarks the build).

    python -m bench.world.ship --write   # (re)make the default world's archive, dropping stale ones
    python -m bench.world.ship --check   # build the default world afresh and compare it with the archive
"""
from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

from bench.core.cache import DONE, disabled

FOLDER = Path(__file__).resolve().parent / "prebuilt"
LEFT_OUT = ("sft_run", DONE)  # the SFT's scratch folder (empty) and the cache's completion mark


def archive_of(key: str) -> Path:
    return FOLDER / f"{key}.tar.gz"


def unpack(key: str, dest: Path) -> bool:
    """Unpack the shipped world ``key`` into the (empty) folder ``dest``; False when there is none to use."""
    archive = archive_of(key)
    if os.environ.get("PREFNOISE_NO_PREBUILT") == "1" or disabled() or not archive.exists():
        return False
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    return True


def pack(world_dir: Path, key: str) -> Path:
    """Write ``world_dir`` as the archive of ``key`` (sorted, fixed owners and times: the same folder gives the
    same bytes)."""
    FOLDER.mkdir(exist_ok=True)
    out = archive_of(key)

    def normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(world_dir.rglob("*")):
            rel = path.relative_to(world_dir)
            if rel.parts[0] in LEFT_OUT or path.is_dir():
                continue
            tar.add(path, arcname=str(rel), filter=normalized, recursive=False)
    return out


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] not in LEFT_OUT}
