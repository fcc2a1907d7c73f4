"""What a cell sees of any Trainer run (preference training, the tiny model's SFT, a reward model): its bar moves
with the optimizer steps and shows the last loss. The per-step logs stay in the trainer's state (the cell writes
them to ``train_log.jsonl``; W&B gets them through ``report_to``) and are printed only when asked."""
from __future__ import annotations

from transformers import TrainerCallback

from bench.core import progress


class CellCallback(TrainerCallback):
    def __init__(self, print_logs: bool = False, phase: str = "train"):
        self.print_logs = print_logs  # also print each log dict, as transformers does without a progress bar
        self.phase = phase

    def on_train_begin(self, args, state, control, **kwargs):
        progress.current().phase(self.phase, total=state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        progress.current().update(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        if "loss" in logs:
            progress.current().note(f"loss {float(logs['loss']):.4g}")
        if self.print_logs and state.is_local_process_zero:
            print({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items()}, flush=True)


def quiet(trainer, phase: str, print_logs: bool = False):
    """The cell's view of ``trainer``: no per-step dicts on the terminal (transformers prints them when its own
    bar is off), the cell's bar instead. Returns the trainer."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(CellCallback(print_logs, phase))
    return trainer
