"""The per-step benchmark's statistic (paired ratios in blocks, bootstrap interval) and its peak-memory reading."""
from __future__ import annotations

import time

from bench.perf import steps


def test_summary_resolves_a_clear_gap_and_not_noise():
    slower = steps.summary(steps.paired_ratios([1.2, 1.21, 1.19, 1.2, 1.22, 1.18], [1.0] * 6), blocks=3)
    assert slower["resolved"] and slower["ci95"][0] > 1.1 and len(slower["block_medians"]) == 3
    noise = steps.summary([0.9, 1.1, 1.0, 0.95, 1.05, 1.0], blocks=2)
    assert not noise["resolved"] and noise["ci95"][0] <= 1.0 <= noise["ci95"][1]
    assert noise["block_spread"] == [min(noise["block_medians"]), max(noise["block_medians"])]


class FakeProc:
    """A stand-in for /proc: the current RSS and the kernel's mark, and whether a reset takes effect."""

    def __init__(self, rss: int, hwm: int, reset_works: bool = True, writable: bool = True):
        self.rss, self.hwm, self.reset_works, self.writable = rss, hwm, reset_works, writable

    def install(self, monkeypatch):
        from bench.perf import memory

        def write(_self, text):
            if not self.writable:
                raise PermissionError("read-only /proc")
            if self.reset_works:
                self.hwm = self.rss

        class Clear:
            write_text = write

        monkeypatch.setattr(memory, "CLEAR_REFS", Clear())
        monkeypatch.setattr(memory, "current_bytes", lambda: self.rss)
        monkeypatch.setattr(memory, "hwm_bytes", lambda: self.hwm)
        monkeypatch.setattr(memory, "lifetime_peak_bytes", lambda: max(self.hwm, 10**12))

    def allocate(self, n: int, counted_by_kernel: bool = True):
        self.rss += n
        if counted_by_kernel:
            self.hwm = max(self.hwm, self.rss)

    def free(self, n: int):
        self.rss -= n


MiB = 2**20


def test_a_verified_reset_measures_the_phase_not_an_earlier_peak(monkeypatch):
    from bench.perf.memory import Phase

    proc = FakeProc(rss=500 * MiB, hwm=800 * MiB)  # an earlier, larger peak (loading, say)
    proc.install(monkeypatch)
    with Phase() as m:
        proc.allocate(100 * MiB)
        proc.free(100 * MiB)  # gone before the sampler's next reading: only the kernel's mark saw it
    assert m.exact and m.method == "hwm"
    assert m.start == 500 * MiB and m.peak == 600 * MiB and m.growth == 100 * MiB


def test_a_reset_that_did_not_take_falls_back_to_the_sampler_and_says_so(monkeypatch):
    from bench.perf.memory import Phase

    proc = FakeProc(rss=500 * MiB, hwm=800 * MiB, reset_works=False)  # accepted, but the mark stays at 800
    proc.install(monkeypatch)
    with Phase(interval=0.001) as m:
        proc.allocate(100 * MiB, counted_by_kernel=False)
        time.sleep(0.05)  # held across many sampler readings
        proc.free(100 * MiB)
    assert not m.exact and m.method == "sampled"
    assert m.peak == 600 * MiB and m.growth == 100 * MiB  # the sampler's floor, not the stale 800 MiB mark


def test_a_mark_that_lags_the_allocation_is_floored_by_the_sampler(monkeypatch):
    from bench.perf.memory import Phase

    proc = FakeProc(rss=500 * MiB, hwm=800 * MiB)
    proc.install(monkeypatch)
    with Phase(interval=0.001) as m:
        proc.allocate(100 * MiB, counted_by_kernel=False)  # the kernel's mark misses it (the CI failure)
        time.sleep(0.05)
        proc.free(100 * MiB)
    assert m.exact and m.peak == 600 * MiB and m.growth == 100 * MiB


def test_without_proc_the_peak_is_the_lifetime_one(monkeypatch):
    from bench.perf import memory

    monkeypatch.setattr(memory, "current_bytes", lambda: None)
    monkeypatch.setattr(memory, "hwm_bytes", lambda: None)
    monkeypatch.setattr(memory, "reset_peak", lambda: False)
    monkeypatch.setattr(memory, "lifetime_peak_bytes", lambda: 900 * MiB)
    with memory.Phase() as m:
        pass
    assert m.method == "lifetime" and not m.exact and m.peak == 900 * MiB


def test_a_real_phase_reads_something_sane():
    """On this machine, whatever its kernel does: only what the code guarantees everywhere."""
    from bench.perf.memory import Phase

    with Phase() as m:
        blob = bytearray(20 * MiB)
        del blob
    assert m.method in ("hwm", "sampled", "lifetime") and m.exact == (m.method == "hwm")
    assert m.peak >= m.start > 0 and m.growth == m.peak - m.start


def test_a_sweeps_cell_time_splits_into_its_phases_and_the_rest():
    from bench.perf.sweep import where_time_goes

    recs = {c: {"status": "ok", "timings": {"train": 6.0, "evaluate": 2.0, "total": 9.0}} for c in "ab"}
    recs["c"] = {"status": "failed", "timings": {}}
    t = where_time_goes({"wall_s": 12.0, "records": recs}, n_jobs=2)
    assert t["wall_per_cell_s"] == 6.0 and t["slot_s"] == 12.0  # two workers: each cell held one for 12 s
    assert t["in_cell_s"] == 9.0 and t["outside_s"] == 3.0
    assert t["phases_s"]["train"] == 6.0 and t["phases_s"]["config"] == 0.0
    assert where_time_goes({"wall_s": 1.0, "records": {}}, 1) == {}


def test_the_benchmark_counts_the_positions_each_layout_computes(tmp_path):
    import tiny_models
    from bench import losses
    from bench import training as tr

    args = tr.dpo_config(tiny_models.TRAIN, tmp_path, 0)
    t = tr.PreferenceTrainer(model=tiny_models.model(), args=args, train_dataset=tiny_models.pairs_dataset(8),
                             processing_class=tiny_models.tokenizer(), pref_loss=losses.get("dpo"))
    batch = next(iter(t.get_train_dataloader()))
    pos = steps.positions(t.model, batch)
    real = int(batch["attention_mask"].sum())
    assert pos["trl_padded"] == batch["input_ids"].numel() and pos["shared"] < real <= pos["packed"]
    assert steps._path(t) == "packed, shared prompts"
