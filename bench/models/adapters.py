"""A LoRA policy as the rest of a cell sees it: whether a model is a peft model, its base model as the reference
(``AdapterOff``) where evaluation needs one, with no second copy in memory, and a model lent to a run that wraps it
in an adapter of its own and given back as it was (``as_it_was``)."""
from __future__ import annotations

from contextlib import contextmanager


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


@contextmanager
def as_it_was(model):
    """Lends ``model`` (a plain transformers model) to a run that may wrap it in a LoRA adapter of its own (TRL's
    ``get_peft_model``: layers replaced, base weights frozen, a fused forward and tags set on it, ``use_cache`` off,
    training mode) and puts all of that back on the way out, whether the run finished or failed half-way: every
    module where it was (the adapter's layers give way to the layers they wrapped, as ``unload`` would), no attribute the run added, ``config.use_cache``, each parameter's
    ``requires_grad``, and the train/eval mode. The weights are the run's business: under an adapter they are
    frozen."""
    modules = list(model.named_modules())
    attributes = set(vars(model))
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    use_cache, training = getattr(model.config, "use_cache", None), model.training
    try:
        yield model
    finally:
        for name, module in modules:  # parents first: a child is looked up under its own parent, put back
            if name:
                parent, _, child = name.rpartition(".")
                owner = model.get_submodule(parent) if parent else model
                if getattr(owner, child, None) is not module:
                    setattr(owner, child, module)
        for key in set(vars(model)) - attributes:
            delattr(model, key)
        for n, p in model.named_parameters():
            p.requires_grad_(flags.get(n, p.requires_grad))
        if use_cache is not None:
            model.config.use_cache = use_cache
        model.train(training)
