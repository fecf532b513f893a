"""MLM-head scale k: norms divided by k, input embeddings untouched, decoder stays untied, and a
collapsed (NaN) run is recorded as diverged while the rest of its sweep completes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import lightning as L
import torch
from transformers import BertConfig, BertForMaskedLM

from splade_exp.models.encoder import SpladeEncoder
from splade_exp.models.head_scale import inflate_head, mean_row_norm, scale_head
from splade_exp.results import read_results
from splade_exp.stages.splade import SpladeModule

REPO = Path(__file__).resolve().parent.parent


def tiny_encoder(seed=0):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    mlm = BertForMaskedLM(cfg)  # decoder tied to the word embeddings, as in BERT
    assert mlm.get_output_embeddings().weight is mlm.bert.embeddings.word_embeddings.weight
    return SpladeEncoder.from_masked_lm(mlm)


def test_mean_row_norm_by_hand():
    # rows (3, 4) and (0, 1): norms 5 and 1 -> mean 3
    assert mean_row_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]])) == pytest.approx(3.0)


@pytest.mark.parametrize("k", [2, 8, 16])
def test_scale_divides_decoder_norm_and_leaves_input_embeddings_bit_identical(k):
    enc = tiny_encoder()
    emb = enc.mlm.bert.embeddings.word_embeddings.weight.detach().clone()
    bias = enc.decoder.bias.detach().clone()
    info = scale_head(enc, k)
    assert info["head.norm_after"] == pytest.approx(info["head.norm_before"] / k, rel=1e-6)
    assert torch.equal(enc.mlm.bert.embeddings.word_embeddings.weight, emb)
    assert torch.equal(enc.decoder.bias, bias)  # bias kept by default


def test_scale_bias_switch():
    enc = tiny_encoder()
    with torch.no_grad():
        enc.decoder.bias.fill_(0.8)
    scale_head(enc, 4, scale_bias=True)
    assert torch.allclose(enc.decoder.bias, torch.full_like(enc.decoder.bias, 0.2))


def test_scale_rejects_non_positive_k():
    with pytest.raises(ValueError, match="head.k"):
        scale_head(tiny_encoder(), 0)


def test_inflate_sets_mean_norm():
    enc = tiny_encoder()
    inflate_head(enc, 2.55)
    assert mean_row_norm(enc.decoder.weight) == pytest.approx(2.55, rel=1e-5)


def test_decoder_stays_untied_through_a_training_step():
    enc = tiny_encoder()
    scale_head(enc, 8)
    emb = enc.mlm.bert.embeddings.word_embeddings.weight
    assert enc.decoder.weight.data_ptr() != emb.data_ptr()
    module = SpladeModule(enc, lr=1e-2, warmup_steps=0, max_steps=1)  # in-batch CE, no regulariser
    ids = torch.randint(5, 50, (4, 6))
    mask = torch.ones_like(ids)
    batch = {"q_input_ids": ids, "q_attention_mask": mask, "d_input_ids": ids.flip(0), "d_attention_mask": mask,
             "doc_keys": torch.arange(4), "pos_index": torch.arange(4)}
    dec_before, emb_before = enc.decoder.weight.detach().clone(), emb.detach().clone()
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, torch.utils.data.DataLoader([batch], batch_size=None))
    assert enc.decoder.weight.data_ptr() != emb.data_ptr()
    # both moved, and differently: they are two parameters, not one
    assert not torch.equal(enc.decoder.weight, dec_before) and not torch.equal(emb, emb_before)
    assert not torch.allclose(enc.decoder.weight - dec_before, emb - emb_before)


@pytest.mark.slow
def test_nan_loss_is_recorded_as_diverged_and_the_sweep_goes_on(tmp_path):
    env = {**os.environ, "SPLADE_EXP_ROOT": str(tmp_path), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "splade_exp", "+experiment=smoke", "-m", "logger=none",
           "trainer.max_steps=12", "trainer.collapse.inject_nan_at_step=4,null"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [read_results(f) for f in (tmp_path / "results" / "smoke").glob("*.parquet")
            if not f.name.startswith("bm25-") and not f.name.endswith(".perquery.parquet")]
    by_status = {r.status.iloc[0]: r for r in runs}
    assert set(by_status) == {"diverged", "completed"}
    diverged = by_status["diverged"]
    assert (diverged.diverged_step == 4).all()
    assert len(diverged) == 4 and diverged["mrr@10"].isna().all()
    done = by_status["completed"]
    assert len(done) == 4 and done["mrr@10"].notna().all()
