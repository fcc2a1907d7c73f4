"""One progress bar per running cell, and the quiet it needs.

A cell opens its bar (``open_bar``); every long step inside it (building the world, the reference pass, training,
sampling) moves that same bar through its phases instead of drawing its own, so a sweep's terminal shows one line
per running cell. The bar is tqdm's, on stderr, drawn only on a terminal (never into log files or CI logs), at the
row of its launcher slot so parallel cells do not overwrite each other. ``quiet_libraries`` turns off the bars
and per-example messages of datasets and transformers.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class Bar:
    """A cell's bar: ``phase(name, total)`` starts a phase, ``update(n)`` advances it, ``note(text)`` shows a
    short status on the right (the last loss, say)."""

    def __init__(self, label: str, slot: int = 0, enabled: bool = True):
        self.label = label
        self._tqdm = None
        if enabled and _terminal() and not _USER_DISABLED:
            from tqdm.auto import tqdm

            size = shutil.get_terminal_size((100, 24))  # a terminal that reports no size gets 100 x 24
            self._tqdm = tqdm(total=None, desc=label, position=slot, leave=False, ncols=size.columns,
                              nrows=max(size.lines, slot + 2), disable=False,
                              file=sys.stderr, bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {elapsed}<{remaining} {postfix}")

    def phase(self, name: str, total: int | None = None) -> None:
        if self._tqdm is not None:  # the description first: reset() redraws, so every phase shows at least once
            self._tqdm.set_description_str(f"{self.label} | {name}", refresh=False)
            self._tqdm.set_postfix_str("", refresh=False)
            self._tqdm.reset(total=total)

    def update(self, n: int = 1) -> None:
        if self._tqdm is not None:
            self._tqdm.update(n)

    def note(self, text: str) -> None:
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None


_USER_DISABLED = bool(os.environ.get("TQDM_DISABLE"))  # read before a cell silences the libraries' own bars
_NULL = Bar("", enabled=False)
_current: Bar = _NULL


def current() -> Bar:
    """The running cell's bar (a silent one outside a cell)."""
    return _current


@contextmanager
def open_bar(label: str, slot: int = 0, enabled: bool = True) -> Iterator[Bar]:
    """The cell's bar for the duration of the block; it disappears when the block ends."""
    global _current
    bar = Bar(label, slot, enabled)
    previous, _current = _current, bar
    try:
        yield bar
    finally:
        bar.close()
        _current = previous


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def quiet_libraries() -> None:
    """No progress bars or info chatter from datasets, transformers and TRL (the cell's own bar says where it is).
    TRL's reference pass draws its bar unless ``TQDM_DISABLE`` is set; the cell's bar passes ``disable=False``."""
    import datasets
    import transformers

    os.environ["TQDM_DISABLE"] = "1"
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
