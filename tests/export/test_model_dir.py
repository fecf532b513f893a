"""The model directory: what plain transformers, sentence-transformers and ``load_encoder`` read
back from it is the encoder that wrote it.

Tiny BERT- and ModernBERT-shaped masked LMs built in code (saved and loaded once, as every backbone
of a run is), with decoders moved off their initial values so that a head that is not saved,
or saved under a name a loader ignores, shows as a difference.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from splade_exp.export import ModelDir, ModelDirError, load_encoder
from splade_exp.export.model_dir import METADATA, write_model_dir
from splade_exp.models.backbone import load_masked_lm, train_wordpiece
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.evaluate import encode

TEXTS = [f"{a} {b} {c}" for a in ("alpha", "beta", "gamma", "delta") for b in ("river", "stone", "cloud")
         for c in ("runs", "falls", "shines", "sleeps")]
# different lengths in one batch (padding), and one longer than max_length (truncation)
PROBE = ["alpha", "beta river runs", "gamma stone " * 20, "delta cloud shines and falls", "river"]
MAX_LENGTH = 12
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=64)
WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "runs", "falls"]


def metadata(pooling: str = "max", k: float = 1.0, applied: bool = False) -> dict:
    return {"run_id": "r0", "sweep": "s", "model": "", "step": 3, "pooling": pooling,
            "head": {"k": k, "scale_bias": False, "applied": applied},
            "max_length": {"query": 8, "document": MAX_LENGTH},
            "backbone": {"name": "tiny", "name_or_path": None, "license": None},
            "data": {"name": "synthetic", "eval_split": "test"}, "results": "", "overrides": None, "config": {}}


def _bert(root: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    tok = train_wordpiece(TEXTS, 60)
    BertForMaskedLM(BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **TINY)).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def _modernbert(root: Path) -> Path:
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    tok = train_wordpiece(TEXTS, 60)
    cfg = ModernBertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=64, global_attn_every_n_layers=2,
                           local_attention=8, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    ModernBertForMaskedLM(cfg).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def trained_encoder(backbone: Path, pooling: str = "max", words: list[str] | None = None):
    """A SpladeEncoder on ``backbone`` whose head differs from the checkpoint's (as after training)."""
    torch.manual_seed(0)
    mlm, tok = load_masked_lm(str(backbone))
    enc = SpladeEncoder.from_masked_lm(mlm, pooling=pooling, pooling_impl="chunked", chunk_size=7)
    if words is not None:
        enc.decoder = nn.Linear(enc.decoder.in_features, len(words))
    with torch.no_grad():
        enc.decoder.weight.normal_(0, 0.5)
        enc.decoder.bias.uniform_(-0.5, 1.0)  # a bias a loader dropped would show
    return enc.eval(), tok


def vocab_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.tsv").write_text("".join(f"{w}\t{10 - i}\n" for i, w in enumerate(WORDS)), encoding="utf-8")
    return root


def own_vectors(enc, tok, texts=PROBE, max_length=MAX_LENGTH) -> np.ndarray:
    return encode(enc, tok, list(texts), max_length, batch_size=8).toarray()


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    return {"bert": _bert(tmp_path_factory.mktemp("bert")), "modernbert": _modernbert(tmp_path_factory.mktemp("mb"))}


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """Where transformers copies a directory's custom module code (trust_remote_code): a temp dir."""
    import transformers.dynamic_module_utils as dmu

    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    return tmp_path / "hf_modules"


@pytest.mark.parametrize("arch,pooling", [("bert", "max"), ("bert", "sum"), ("modernbert", "max")])
def test_wordpiece_dir_loads_in_transformers_and_sentence_transformers(backbones, tmp_path, arch, pooling):
    from sentence_transformers import SparseEncoder
    from transformers import AutoModelForMaskedLM

    enc, tok = trained_encoder(backbones[arch], pooling)
    ids = tok(PROBE[:2], padding=True, return_tensors="pt")
    logits = enc.logits(ids["input_ids"], ids["attention_mask"]).detach()
    before = own_vectors(enc, tok)
    out = write_model_dir(tmp_path / "model", enc, tok, metadata(pooling))

    # the encoder is as before: its trunk ends at the head's transform again
    assert isinstance(enc.mlm.get_submodule(enc.decoder_path), nn.Identity)
    np.testing.assert_array_equal(own_vectors(enc, tok), before)

    # plain transformers: no missing key, and the logits are the trained head's
    mlm, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    torch.testing.assert_close(mlm.eval()(**ids).logits, logits, rtol=0, atol=1e-5)

    # sentence-transformers: its SPLADE vectors equal the project's
    st = SparseEncoder(str(out), device="cpu")
    assert st.get_max_seq_length() == MAX_LENGTH
    dense = st.encode(PROBE, convert_to_tensor=True, convert_to_sparse_tensor=False).cpu().numpy()
    assert dense.shape == before.shape and (before > 0).sum() > 10
    assert np.abs(dense - before).max() <= 1e-5

    # the project's loader: the same vectors and the tokenizer's pieces as terms
    loaded = load_encoder(out)
    vecs, terms = loaded.encode(PROBE)
    assert np.abs(vecs.toarray() - before).max() <= 1e-5
    assert terms == tok.convert_ids_to_tokens(list(range(len(tok))))


def test_unigram_dir(backbones, tmp_path, modules_cache):
    from sentence_transformers import SparseEncoder
    from transformers import AutoModelForMaskedLM

    enc, tok = trained_encoder(backbones["bert"], "max", WORDS)
    before = own_vectors(enc, tok)
    out = write_model_dir(tmp_path / "model", enc, tok, metadata("max", k=4.0, applied=True),
                          vocab_dir(tmp_path / "vocab"))
    meta = json.loads((out / METADATA).read_text())
    assert meta["vocab"] == {"kind": "unigram", "size": len(WORDS), "file": "unigram_head/vocab.tsv"}
    assert (out / "unigram_head" / "vocab.tsv").read_text().splitlines()[0] == "alpha\t10"
    assert ModelDir.read(out).head_scaled

    # a standard masked LM for transformers: WordPiece rows tied to the input embeddings
    mlm, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and mlm.get_output_embeddings().out_features == len(tok)

    loaded = load_encoder(out)
    vecs, terms = loaded.encode(PROBE)
    assert terms == WORDS
    np.testing.assert_allclose(vecs.toarray(), before, rtol=0, atol=1e-6)
    top = loaded.decode(vecs[1], top_k=3)
    assert [t for t, _ in top] == [WORDS[i] for i in np.argsort(-before[1], kind="stable")[:3]]

    # sentence-transformers: only with trust_remote_code, then the same vectors, named by the words
    with pytest.raises(ValueError, match="trust_remote_code"):
        SparseEncoder(str(out), device="cpu")
    st = SparseEncoder(str(out), device="cpu", trust_remote_code=True)
    dense = st.encode(PROBE, convert_to_tensor=True, convert_to_sparse_tensor=False).cpu().numpy()
    assert dense.shape == (len(PROBE), len(WORDS))
    assert np.abs(dense - before).max() <= 1e-5
    decoded = st.decode(torch.tensor(dense[1]), top_k=3)
    assert [t for t, _ in decoded] == [t for t, _ in top]


def test_vocabulary_must_match_the_head(backbones, tmp_path):
    enc, tok = trained_encoder(backbones["bert"], "max", WORDS[:-1])
    with pytest.raises(ModelDirError, match="9 words but the head has 8 rows"):
        write_model_dir(tmp_path / "model", enc, tok, metadata(), vocab_dir(tmp_path / "vocab"))
    assert not (tmp_path / "model").exists() and not list(tmp_path.glob(".model*"))


def test_rewrite_replaces_the_directory_and_a_failed_one_keeps_the_old(backbones, tmp_path, monkeypatch):
    enc, tok = trained_encoder(backbones["bert"])
    out = write_model_dir(tmp_path / "model", enc, tok, metadata())
    (out / "stale.txt").write_text("from an older export")
    write_model_dir(out, enc, tok, {**metadata(), "step": 7})
    assert not (out / "stale.txt").exists() and ModelDir.read(out).meta["step"] == 7

    import splade_exp.export.model_dir as md

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(md, "_save_unigram_head", broken)
    with pytest.raises(OSError, match="disk full"):
        write_model_dir(out, *trained_encoder(backbones["bert"], "max", WORDS), metadata(),
                        vocab_dir(tmp_path / "vocab"))
    assert ModelDir.read(out).meta["step"] == 7 and ModelDir.read(out).vocab_kind == "wordpiece"
    assert not list(tmp_path.glob(".model*"))


def test_keeps_head_and_pooling_rules(backbones, tmp_path):
    enc, tok = trained_encoder(backbones["bert"], "max", WORDS)
    out = write_model_dir(tmp_path / "u", enc, tok, metadata(), vocab_dir(tmp_path / "vocab"))
    unigram = ModelDir.read(out)
    assert unigram.keeps_head("pretrained", False)
    assert not unigram.keeps_head("random", False) and not unigram.keeps_head("esplade", False)
    with pytest.raises(ModelDirError, match="EMLM pretraining of the unigram head"):
        unigram.keeps_head("pretrained", True)
    with pytest.raises(ModelDirError, match="head.pooling=max"):
        unigram.check_pooling("sum")
    enc, tok = trained_encoder(backbones["bert"])
    wordpiece = ModelDir.read(write_model_dir(tmp_path / "w", enc, tok, metadata()))
    assert wordpiece.keeps_head("pretrained", False) and not wordpiece.keeps_head("pretrained", True)
    assert ModelDir.of(backbones["bert"]) is None  # a plain masked-LM directory
    with pytest.raises(ModelDirError, match="no splade_exp.json"):
        ModelDir.read(backbones["bert"])


def test_load_encoder_takes_a_hub_repository(backbones, tmp_path, monkeypatch):
    import huggingface_hub

    enc, tok = trained_encoder(backbones["bert"])
    # the run's head settings (chunk_size 7, as trained_encoder's) are load_encoder's defaults
    meta = {**metadata(), "config": {"head": {"pooling_impl": "chunked", "chunk_size": 7}}}
    out = write_model_dir(tmp_path / "model", enc, tok, meta)
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo: asked.append(repo) or str(out))
    loaded = load_encoder("me/splade-model")
    assert asked == ["me/splade-model"] and loaded.model_dir.path == out and loaded.encoder.chunk_size == 7
    np.testing.assert_array_equal(loaded.encode(PROBE, batch_size=8)[0].toarray(), own_vectors(enc, tok))
