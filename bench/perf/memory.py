"""Peak resident memory of one phase of this process, and how that figure was measured.

Two readings, because neither is a contract on every Linux:

- the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``), reset to the current RSS by writing 5 to
  ``/proc/self/clear_refs``. Some kernels refuse the write, some accept it and do not reset, and in a process with
  many threads the mark can lag what was allocated. So the reset is *checked* (right after it, the mark must sit
  within ``SLACK`` of the current RSS) and the mark is only used when the check passed;
- a sampler thread that reads the current RSS every ``interval`` seconds during the phase: a floor of the true peak
  (an allocation held for less than one interval can slip between two readings), whatever the kernel does.

``Phase.peak`` is the larger of the two readings that apply, and ``Phase.method`` says which one gave it:
``"hwm"`` (a verified reset: the exact peak), ``"sampled"`` (the sampler's floor: the reset did not take) or
``"lifetime"`` (no ``/proc``: ``ru_maxrss``, a peak since the process started, an upper bound). ``exact`` is True
for ``"hwm"`` only. Benchmarks print the method beside each figure.

    with Phase() as m:
        trainer.train()
    m.peak, m.growth, m.method     # bytes: the phase's peak RSS, that peak minus the RSS at its start; the method
"""
from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

STATUS, CLEAR_REFS, STATM = Path("/proc/self/status"), Path("/proc/self/clear_refs"), Path("/proc/self/statm")
SLACK = 8 * 2**20  # a reset "took" when the mark is within this of the current RSS right after it


def current_bytes() -> int | None:
    """The resident set size now (None without ``/proc``)."""
    try:
        return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def hwm_bytes() -> int | None:
    """The kernel's high-water mark of the RSS since the last reset (None without ``/proc``)."""
    try:
        kib = next(line.split()[1] for line in STATUS.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(kib) * 1024
    except (OSError, StopIteration, ValueError):
        return None


def lifetime_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Start a new high-water mark from the current RSS; True only when the reset is seen to have taken effect."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    hwm, now = hwm_bytes(), current_bytes()
    return hwm is not None and now is not None and hwm <= now + SLACK


class Sampler:
    """The largest RSS seen by a background thread reading it every ``interval`` seconds (a floor of the peak)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.max = interval, current_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.max = max(self.max, current_bytes() or 0)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.max = max(self.max, current_bytes() or 0)


class Phase:
    """A phase's peak RSS (``peak``), its growth over the RSS at the phase's start (``growth``), in bytes, and
    ``method`` (``hwm`` | ``sampled`` | ``lifetime``; see the module docstring); ``exact`` is True for ``hwm``."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval

    def __enter__(self) -> Phase:
        self.exact = reset_peak()
        start = current_bytes()
        self.start = lifetime_peak_bytes() if start is None else start
        self.peak = self.growth = 0
        self.method = "hwm" if self.exact else ("sampled" if start is not None else "lifetime")
        self._sampler = Sampler(self.interval).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._sampler.__exit__(*exc)
        readings = [self._sampler.max]
        if self.method == "hwm":
            readings.append(hwm_bytes() or 0)
        elif self.method == "lifetime":
            readings.append(lifetime_peak_bytes())
        self.peak = max(readings)
        self.growth = max(0, self.peak - self.start)
