"""Causal LMs: loading a reference policy (``load``), SmolLM2 from a PyPI package (``smollm2``), sampling and
scoring responses (``sampling``), and the device a model runs on (``devices``)."""
from bench.models.load import load_causal_lm, resolve_model_path

__all__ = ["load_causal_lm", "resolve_model_path"]
