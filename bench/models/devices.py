"""Where a model runs: the device a setting names, and whether to train in bf16 there."""
from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


def pick_device(device: str = "auto", field: str = "train.device") -> str:
    """``auto`` -> cuda when visible, else cpu; ``cuda`` without a GPU is an error naming ``field``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{field}=cuda but no CUDA device is visible; valid choices: {', '.join(DEVICES)}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"{field}={device!r}; valid choices: {', '.join(DEVICES)}")
    return device


def use_bf16(setting, device: str) -> bool:
    """``auto``: bf16 on GPUs that support it, never on the CPU. ``true`` on the CPU is a measured option: on a CPU
    with AMX-BF16 a training step of SmolLM2-135M took 0.62x the fp32 time, one of the tiny world's model 1.54x
    (its matrices are too small), and its summed log-probs moved by up to 0.1 nats (README: performance)."""
    import torch

    if setting == "auto":
        return device == "cuda" and torch.cuda.is_bf16_supported()
    return bool(setting)
