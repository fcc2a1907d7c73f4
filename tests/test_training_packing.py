"""The packed training path (``bench.training.packing``) computes what TRL's padded path computes: the same
per-sequence log-probs and the same loss values on the same batch, to float round-off (summed log-probs 1e-4
absolute, loss 1e-5 relative), for a loss with a reference (DPO), a reference-free length-normalized one (SimPO)
and a length-normalized one with a reference (IPO), with each pair's prompt computed once or not, through either
attention implementation that takes the mask; and a model it cannot serve falls back to TRL's path."""
from __future__ import annotations

import pytest
import torch

import tiny_models
from bench import losses
from bench import training as tr
from bench.training import packing


def _trainer(loss_name: str, tmp_path, pack: bool, share: bool = True, model=None):
    loss = losses.get(loss_name)
    args = tr.dpo_config(tiny_models.TRAIN, tmp_path / f"{loss_name}-{pack}-{share}", 0)
    return tr.PreferenceTrainer(model=model or tiny_models.model(), args=args,
                                train_dataset=tiny_models.pairs_dataset(8), processing_class=tiny_models.tokenizer(),
                                pref_loss=loss, packing=pack, share_prompt=share)


def _batch(t):
    return next(iter(t.get_train_dataloader()))


def test_pack_keeps_every_token_its_position_and_its_label():
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    attn = (ids != 0).long()
    attn[2] = 1
    comp = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    p = packing.pack(ids, attn, comp, factor=1.5)  # width 9, first fit longest first: rows [6, 3] and [4]
    assert p.input_ids.shape == (2, 9) and p.n == 3
    assert p.input_ids[0].tolist() == [1, 2, 3, 4, 5, 6, 9, 10, 11]
    assert p.position_ids[0].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]  # each sequence from 0
    assert p.labels[0].tolist() == [-100, -100, -100, 4, 5, 6, -100, 10, 11]  # completion tokens only
    assert p.sequence[0].tolist() == [2, 2, 2, 2, 2, 2, 1, 1, 1]
    assert p.input_ids[1, :4].tolist() == [5, 6, 7, 8] and p.position_ids[1].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4]
    assert p.labels[1].tolist() == [-100, -100, 7, 8] + [-100] * 5 and p.sequence[1, 4:].tolist() == [-1] * 5


@pytest.mark.parametrize("loss_name, head, share, attn", [
    ("dpo", "plain", False, "sdpa"), ("dpo", "plain", True, "sdpa"), ("simpo", "plain", True, "sdpa"),
    ("ipo", "plain", True, "sdpa"), ("dpo", "tiled", False, "sdpa"), ("dpo", "tiled", True, "sdpa"),
    ("dpo", "plain", True, "eager")])
def test_the_packed_path_gives_the_padded_paths_log_probs_and_loss(loss_name, head, share, attn, tmp_path,
                                                                    monkeypatch):
    if head == "tiled":  # a large vocabulary's head: TRL's tiled kernel on the packed rows
        monkeypatch.setattr(packing, "PLAIN_HEAD_MAX_LOGITS", 0)
    model = tiny_models.model()
    model.config._attn_implementation = attn  # eager attention takes the shared layout's mask as an additive one
    padded, packed = _trainer(loss_name, tmp_path, False), _trainer(loss_name, tmp_path, True, share, model)
    batch = _batch(padded)
    assert packing.matches_padded(packed.model, batch, share=share)[0]
    kw = {k: v for k, v in batch.items() if k not in ("completion_mask", *tr.REF_COLUMNS)}
    a = padded._policy_logps(padded.model, batch, {**kw, "use_cache": False})
    b = packed._policy_logps(packed.model, batch, {**kw, "use_cache": False})
    assert packed.packing is True and padded.packing is False and packed.share_prompt is share
    shared = packing.pack(batch["input_ids"], batch["attention_mask"], batch["completion_mask"], share=share)
    assert shared.shared == (batch["input_ids"].shape[0] // 2 if share else 0)  # every pair, or none
    torch.testing.assert_close(b[0], a[0], atol=1e-4, rtol=0)  # summed completion log-probs per sequence
    torch.testing.assert_close(b[1], a[1])  # completion lengths, exactly
    torch.testing.assert_close(b[2], a[2], atol=1e-5, rtol=1e-5)  # mean entropy
    loss_a = padded._compute_loss(padded.model, dict(batch), False)
    loss_b = packed._compute_loss(packed.model, dict(batch), False)
    torch.testing.assert_close(loss_b, loss_a, atol=1e-6, rtol=1e-5)
    loss_b.backward()
    assert all(p.grad is not None for p in packed.model.parameters() if p.requires_grad)


def test_a_model_the_packed_path_cannot_serve_keeps_trls_path(tmp_path, caplog):
    model = tiny_models.model()
    model.config.logit_scale = 2.0  # a model whose head scales its logits: TRL applies it, the packed path does not
    args = tr.dpo_config(tiny_models.TRAIN, tmp_path / "scaled", 0)
    t = tr.PreferenceTrainer(model=model, args=args, train_dataset=tiny_models.pairs_dataset(8),
                             processing_class=tiny_models.tokenizer(), pref_loss=losses.get("dpo"), packing=True)
    assert t.packing is False  # decided once, at the reference pass, against TRL's own forward
    assert "TRL's padded path (train.packing ignored)" in caplog.text  # said, not silent
    ok, gap = packing.matches_padded(t.model, _batch(t))
    assert not ok and gap > 1e-3


def test_a_shared_segment_lays_out_prompt_chosen_copy_rejected_and_hides_chosen_from_rejected():
    # two pairs, [chosen 0, chosen 1, rejected 0, rejected 1]; pair 1's prompts differ: it keeps two segments
    ids = torch.tensor([[1, 2, 3, 10, 11], [4, 5, 20, 0, 0], [1, 2, 3, 12, 0], [4, 6, 21, 22, 0]])
    attn = (ids != 0).long()
    comp = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 0]])
    p = packing.pack(ids, attn, comp, factor=1.0, share=True)
    assert p.shared == 1 and p.n == 4
    row = next(r for r in range(p.input_ids.shape[0]) if p.input_ids[r, 0] == 1 and p.input_ids[r, 1] == 2)
    # prompt 1 2 3, chosen 10 11, the prompt's last token again, rejected 12
    assert p.input_ids[row, :7].tolist() == [1, 2, 3, 10, 11, 3, 12]
    assert p.position_ids[row, :7].tolist() == [0, 1, 2, 3, 4, 2, 3]  # rejected continues from the prompt
    assert p.labels[row, :7].tolist() == [-100, -100, -100, 10, 11, -100, 12]
    assert p.sequence[row, :7].tolist() == [0, 0, 0, 0, 0, 2, 2]
    sees = p.attention[row, 0]
    assert sees[6, :7].tolist() == [True, True, False, False, False, True, True]  # rejected: prompt, copy, itself
    assert sees[5, :7].tolist() == [True, True, False, False, False, True, False]  # the copy: as the original
    assert sees[2, :7].tolist() == [True, True, True, False, False, False, False]  # the original last prompt token
    assert sees[4, :7].tolist() == [True, True, True, True, True, False, False]  # chosen: prompt and itself
    assert not sees[:7, 7:].any() and not sees[7:, :7].any()  # nothing across segments
    assert p.input_ids[p.sequence == 1].tolist() == [4, 5, 20]  # pair 1: a segment per sequence, from position 0
    assert p.input_ids[p.sequence == 3].tolist() == [4, 6, 21, 22]
    assert p.position_ids[p.sequence == 3].tolist() == [0, 1, 2, 3]
    assert (p.attention.sum(-1) >= 1).all()  # every position sees at least itself: no empty softmax row


def test_a_shared_batch_with_a_pair_of_different_prompts_still_matches_the_padded_path(tmp_path):
    t = _trainer("dpo", tmp_path, True)
    batch = dict(_batch(t))
    ids = batch["input_ids"].clone()
    half = ids.shape[0] // 2
    first = int(batch["completion_mask"][half].int().argmax())
    real = batch["attention_mask"][half].bool().nonzero().flatten()
    ids[half, real[0]] = (ids[half, real[0]] + 1) % 50 + 5  # rejected 0's prompt differs from chosen 0's
    batch["input_ids"] = ids
    assert first > 0
    ok, gap = packing.matches_padded(t.model, batch, share=True)
    p = packing.pack(batch["input_ids"], batch["attention_mask"], batch["completion_mask"], share=True)
    assert ok and p.shared == half - 1


def test_rows_of_shared_segments_weigh_positions_against_attention():
    lengths = [10, 4, 4, 4, 4, 4]  # one row of 30 computes the fewest positions; rows of 10 the least attention
    assert packing._layout(lengths, None, True, qk=0.0)[0] == 30
    assert packing._layout(lengths, None, True, qk=0.1)[0] == 10  # 40 x (1 + 1) < 30 x (1 + 3)
    assert packing._layout(lengths, None, False, qk=0.1)[0] == 15  # unshared rows keep their measured factor


def test_a_sliding_window_model_and_a_batch_without_shared_prompts_do_not_share(tmp_path, caplog):
    windowed = tiny_models.model()
    windowed.config.sliding_window = 8  # a custom mask would drop the window: no sharing, the plain packed path
    assert not packing.can_share(windowed) and packing.can_share(tiny_models.model())
    t = _trainer("dpo", tmp_path, True, True, windowed)
    assert t.packing is True and t.share_prompt is False

    t = _trainer("dpo", tmp_path / "b", True)
    batch = dict(_batch(t))
    half = batch["input_ids"].shape[0] // 2
    batch["input_ids"] = batch["input_ids"].clone()
    for i in range(half, 2 * half):  # every rejected prompt differs from its chosen one
        first = int(batch["attention_mask"][i].bool().nonzero()[0])
        batch["input_ids"][i, first] = (batch["input_ids"][i, first] + 1) % 50 + 5
    assert packing.matches_padded(t.model, batch, share=True) == (False, float("inf"))  # nothing shared to check
    assert packing.matches_padded(t.model, batch, share=False)[0]
    fresh = _trainer("dpo", tmp_path / "c", True)
    fresh.packing = None
    with caplog.at_level("WARNING", logger="prefnoise"):
        fresh._decide_packing(fresh.model, batch)
    assert fresh.packing is True and fresh.share_prompt is False and "prompts not shared" in caplog.text
