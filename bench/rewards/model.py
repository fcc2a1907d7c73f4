"""A loaded reward model (``RewardModel``) and the one encoding its training and scoring share.

Any ``AutoModelForSequenceClassification`` with one output logit is a reward model here. A (prompt, response) pair
is encoded with the tokenizer's chat template when it has one (prompt as the user turn, response as the assistant
turn), else as a text pair ``tokenizer(prompt, response)`` (BERT-style ``[CLS] prompt [SEP] response [SEP]``).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.core.options import ConfigError


# ---------------------------------------------------------------- encoding (shared by training and scoring)
def _has_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode(tokenizer, prompt: str, response: str, max_length: int, use_template: bool) -> dict[str, list[int]]:
    """Token ids of one (prompt, response) as the reward model reads it.

    With a chat template: user turn = prompt, assistant turn = response; over-long inputs keep their last
    ``max_length`` tokens (a decoder reward model reads the reward at the end). Without: a text pair, truncated
    longest-first.
    """
    prompt = prompt.strip()
    if use_template:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        enc = tokenizer(text, add_special_tokens=False)
        out = {k: list(v)[-max_length:] for k, v in enc.items() if k in ("input_ids", "token_type_ids")}
    else:
        enc = tokenizer(prompt, response, truncation="longest_first", max_length=max_length)
        out = {k: list(v) for k, v in enc.items() if k in ("input_ids", "token_type_ids")}
    return out


def collate(encodings: list[dict[str, list[int]]], pad_id: int):
    """Right-pad a list of encodings into tensors (input_ids, attention_mask and token_type_ids when present)."""
    import torch

    n = max(len(e["input_ids"]) for e in encodings)
    ids = torch.full((len(encodings), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encodings), n), dtype=torch.long)
    types = torch.zeros((len(encodings), n), dtype=torch.long) if "token_type_ids" in encodings[0] else None
    for i, e in enumerate(encodings):
        k = len(e["input_ids"])
        ids[i, :k] = torch.tensor(e["input_ids"])
        mask[i, :k] = 1
        if types is not None:
            types[i, :k] = torch.tensor(e["token_type_ids"])
    out = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = types
    return out


class PairCollator:
    """For TRL's RewardTrainer: chosen rows then rejected rows (its loss chunks the logits in two halves).

    Unlike TRL's default collator it carries token_type_ids, so training sees exactly what scoring sees.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict]) -> dict:
        def side(name: str) -> list[dict]:
            out = []
            for ex in examples:
                e = {"input_ids": ex[f"{name}_ids"]}
                if ex.get(f"{name}_token_type_ids") is not None:
                    e["token_type_ids"] = ex[f"{name}_token_type_ids"]
                out.append(e)
            return out

        return collate(side("chosen") + side("rejected"), self.pad_id)


# ---------------------------------------------------------------- a loaded reward model
class RewardModel:
    """A sequence-classification reward model and its tokenizer, scoring (prompt, response) pairs."""

    def __init__(self, model, tokenizer, max_length: int, use_chat_template="auto", batch_size: int = 32,
                 where: str = "evaluator.reward_model"):
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        has = _has_template(tokenizer)
        if use_chat_template == "auto":
            self.use_template = has
        elif use_chat_template in (True, "true"):
            if not has:
                raise ConfigError(f"{where}.chat_template=true but the reward model's tokenizer has no chat template; "
                                  "valid: auto or false")
            self.use_template = True
        elif use_chat_template in (False, "false"):
            self.use_template = False
        else:
            raise ConfigError(f"{where}.chat_template={use_chat_template!r}; valid: auto, true, false")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.pad_token is None:
            raise ValueError("the reward model's tokenizer has neither a pad token nor an eos token")
        if getattr(model.config, "pad_token_id", None) is None:  # decoder reward models find the last token by it
            model.config.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def load(cls, path: str, device: str = "cpu", where: str = "evaluator.reward_model", **kw) -> RewardModel:
        model, tokenizer = _load(str(path), device, where)
        return cls(model, tokenizer, where=where, **kw)

    def encode(self, prompt: str, response: str) -> dict[str, list[int]]:
        return encode(self.tokenizer, prompt, response, self.max_length, self.use_template)

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """One reward per (prompt, response); deterministic (batches are formed by length, eval mode, no grad)."""
        import torch

        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        # each distinct (prompt, response) is scored once: repeats cost nothing and get the very same reward
        # (batch composition changes float rounding), so identical responses tie exactly
        where: dict[tuple[str, str], int] = {}
        slot = [where.setdefault((p, r), len(where)) for p, r in zip(prompts, responses)]
        encs = [self.encode(p, r) for p, r in where]
        order = sorted(range(len(encs)), key=lambda i: len(encs[i]["input_ids"]))  # little padding
        out = np.zeros(len(encs), dtype=np.float64)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                padded = collate([encs[i] for i in idx], self.tokenizer.pad_token_id)
                batch = {k: v.to(device) for k, v in padded.items()}
                logits = self.model(**batch).logits.float()
                out[idx] = logits[:, 0].cpu().numpy()
        self.model.train(was_training)
        return out[slot]

    def pairwise_accuracy(self, rows: list[dict]) -> float:
        """Fraction of pairs whose chosen response scores higher (ties half); NaN for no pairs."""
        if not rows:
            return float("nan")
        prompts = [r["prompt"] for r in rows]
        both = self.score(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        c, j = both[: len(rows)], both[len(rows) :]
        return float(np.mean((c > j) + 0.5 * (c == j)))


def _load(path: str, device: str, where: str):
    """The model and tokenizer at ``path`` (a folder or a hub name); ``where`` names the recipe in errors."""
    field = f"{where}.path"
    local = Path(path).expanduser()
    looks_local = local.exists() or path.startswith(("/", "./", "../", "~")) or path.count("/") > 1
    if looks_local and not local.is_dir():
        raise ConfigError(f"{field}={path!r}: no such folder (give a reward-model folder, a hub name, or embedded)")
    try:
        model, tokenizer = _from_pretrained(str(local) if local.exists() else path, device)
    except (OSError, ValueError) as e:
        what = "not a sequence-classification model folder" if looks_local else "not found locally or on the hub"
        raise ConfigError(f"{field}={path!r}: {what} ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
    if model.config.num_labels != 1:
        raise ConfigError(f"{field}={path!r} has num_labels={model.config.num_labels}; a reward model outputs one "
                          "logit (AutoModelForSequenceClassification with num_labels=1)")
    return model, tokenizer


@lru_cache(maxsize=2)  # one process scores many batches (and cells) with the same model: load it once
def _from_pretrained(src: str, device: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(src)
    return model.to(device).eval(), tokenizer
