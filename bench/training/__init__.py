"""One trainer path for every loss and method: ``PreferenceTrainer`` (TRL's DPOTrainer with our loss), its
``DPOConfig`` from the typed ``train`` config (``args``), the shared reference log-prob cache (``ref_cache``), LoRA
through peft on TRL's own route (``lora``) and the cell's view of training (``callbacks``)."""
from bench.training.args import dpo_config
from bench.training.trainer import REF_COLUMNS, PreferenceTrainer

__all__ = ["PreferenceTrainer", "REF_COLUMNS", "dpo_config"]
