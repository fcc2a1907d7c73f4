"""A LoRA policy as the rest of a cell sees it: whether a model is a peft model, and its base model as the
reference (``AdapterOff``) where evaluation needs one, with no second copy in memory."""
from __future__ import annotations


def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # peft absent: nothing can be a peft model
        return False
    return isinstance(model, PeftModel)


class AdapterOff:
    """A LoRA policy's base model as the reference model, with no second copy: every forward and generation runs
    the ``PeftModel`` under ``disable_adapter`` (each LoRA layer then returns its base layer's output, the same
    numbers as a separately loaded reference). What evaluation calls on a reference: calling it, ``generate``,
    ``parameters``, ``eval`` (the policy's mode: evaluation); ``to`` leaves the policy where it is (its device is the
    evaluation's)."""

    def __init__(self, policy):
        self.policy = policy

    def __call__(self, *args, **kwargs):
        with self.policy.disable_adapter():
            return self.policy(*args, **kwargs)

    def generate(self, *args, **kwargs):
        with self.policy.disable_adapter():
            return self.policy.generate(*args, **kwargs)

    def parameters(self):
        return self.policy.parameters()

    def eval(self):
        self.policy.eval()
        return self

    def to(self, *args, **kwargs):
        return self
