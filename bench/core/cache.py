"""Content-addressed artifact cache, safe under parallel jobs.

An entry lives at ``<cache root>/<kind>/<key>/`` where key is a hash of everything that determines it. It is
built at most once: the builder runs under a file lock, writes into a temporary folder and renames it into place,
so a reader sees a complete entry or none, and a killed build leaves only a temporary folder behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

DONE = ".complete"


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hash of a JSON-able object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def user_cache_dir() -> Path:
    """``$PREFNOISE_CACHE_DIR`` or ``~/.cache/prefnoise``: for what outlives a project root (converted models)."""
    return Path(os.environ.get("PREFNOISE_CACHE_DIR") or Path.home() / ".cache" / "prefnoise")


def disabled() -> bool:
    """``PREFNOISE_NO_CACHE=1`` turns the shared caches off (each cell rebuilds what it needs): for benchmarks."""
    return os.environ.get("PREFNOISE_NO_CACHE", "") not in ("", "0")


def get_or_build(root: str | os.PathLike, kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """Return the folder of entry (kind, key), building it with ``build(tmp_folder)`` if absent."""
    root = Path(root)
    if disabled():
        root = Path(tempfile.mkdtemp(prefix="prefnoise-nocache-"))
    final = root / kind / key
    if (final / DONE).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if (final / DONE).exists():  # another job built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}.tmp-"))
        try:
            build(tmp)
            (tmp / DONE).write_text("ok\n")
            if final.exists():  # an incomplete leftover from a killed build
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
