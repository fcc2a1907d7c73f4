"""Peak resident memory of one phase of this process, as the kernel counts it.

Linux keeps a high-water mark of the resident set (``VmHWM`` in ``/proc/self/status``); writing 5 to
``/proc/self/clear_refs`` resets it to the current size, so a phase measured from its start is not hidden under an
earlier, larger peak (imports, loading). Where ``/proc`` is missing or read-only, the fallback is ``ru_maxrss``: a
lifetime peak, which ``exact`` says.

    with Phase() as m:
        trainer.train()
    m.peak, m.growth          # bytes: the phase's peak RSS, and that peak minus the RSS at its start
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

STATUS, CLEAR_REFS, STATM = Path("/proc/self/status"), Path("/proc/self/clear_refs"), Path("/proc/self/statm")


def current_bytes() -> int:
    """The resident set size now."""
    try:
        return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_bytes()


def peak_bytes(reset: bool = False) -> int:
    """The peak resident set size since the last reset (or since start); ``reset``: then start a new peak."""
    try:
        kib = int(next(line.split()[1] for line in STATUS.read_text().splitlines() if line.startswith("VmHWM:")))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if reset:
        reset_peak()
    return kib * 1024


def reset_peak() -> bool:
    """Start a new high-water mark from the current RSS; False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class Phase:
    """A phase's peak RSS (``peak``) and its growth over the RSS at the phase's start (``growth``), in bytes;
    ``exact`` is False when the peak could not be reset (a lifetime peak, an upper bound)."""

    def __enter__(self) -> Phase:
        self.exact = reset_peak()
        self.start = current_bytes()
        self.peak = self.growth = 0
        return self

    def __exit__(self, *exc) -> None:
        self.peak = max(peak_bytes(), current_bytes())
        self.growth = self.peak - self.start
