"""Backbones: a small BERT built from a config with a WordPiece tokenizer trained on the data
(offline default), or any ``AutoModelForMaskedLM`` from a local directory or a hub name."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class BackboneError(ValueError):
    """A backbone that cannot be loaded; the message names the path or config key."""


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer (``tokenizers`` library) on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer numbers its "##" alphabet in hash-map order, different in every process, and
    # different ids give a differently initialised model. WordPiece matching depends only on the
    # set of pieces, so renumber them. (Merges tied at the vocabulary cut-off are broken by those
    # ids too, so on such a corpus the set itself can still differ between processes.)
    pieces = sorted(set(tok.get_vocab()) - set(SPECIAL_TOKENS))
    tok.model = models.WordPiece({t: i for i, t in enumerate(SPECIAL_TOKENS + pieces)}, unk_token="[UNK]")
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


def build_bert(tokenizer: PreTrainedTokenizerFast, **config) -> BertForMaskedLM:
    """A randomly initialised BERT masked LM sized by ``config`` (BertConfig keyword arguments)."""
    cfg = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **config)
    return BertForMaskedLM(cfg)


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
KEY = "backbone.name_or_path"


def looks_local(name_or_path: str) -> bool:
    return Path(os.path.expanduser(str(name_or_path))).exists() or str(name_or_path).startswith((".", "/", "~"))


def check_local_model(name_or_path: str) -> Path:
    """A local masked-LM directory with a config, weights and tokenizer files, or a BackboneError."""
    p = Path(os.path.expanduser(str(name_or_path)))
    if not p.exists():
        raise BackboneError(f"{p}: {KEY} does not exist; give a directory written by save_pretrained "
                            "(config.json + weights + tokenizer files) or a hub name")
    if not p.is_dir():
        raise BackboneError(f"{p}: {KEY} is not a directory; give the directory that holds config.json")
    if not (p / "config.json").exists():
        raise BackboneError(
            f"{p}: no config.json, so no model here; {KEY} must be a "
            "directory written by save_pretrained (config.json + weights + tokenizer files)"
        )
    if not any((p / f).exists() for f in WEIGHT_FILES):
        raise BackboneError(f"{p}: no weights ({' or '.join(WEIGHT_FILES[::2])}); {KEY} must hold a saved model "
                            "(model.save_pretrained(dir))")
    if not any((p / f).exists() for f in TOKENIZER_FILES):
        raise BackboneError(f"{p}: no tokenizer files (one of {list(TOKENIZER_FILES)}); save the tokenizer beside "
                            "the model (tokenizer.save_pretrained(dir))")
    return p


def load_masked_lm(name_or_path: str):
    """(model, tokenizer) from a local directory or a hub name.

    A local path that is not a complete model directory, or whose files cannot be read, gets a
    BackboneError naming the directory (or file) and what to do.
    """
    local = looks_local(name_or_path)
    where = str(check_local_model(name_or_path)) if local else str(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model, info = AutoModelForMaskedLM.from_pretrained(where, output_loading_info=True)
    except OSError as err:
        raise BackboneError(f"{name_or_path}: cannot load a masked-LM model or tokenizer ({err}); check "
                            f"{KEY}") from err
    except Exception as err:  # safetensors / JSON / pickle errors: a damaged file in the directory
        if not local:
            raise
        raise BackboneError(f"{where}: a file of this model directory is damaged or truncated "
                            f"({type(err).__name__}: {err}); save or copy the model again, then point {KEY} "
                            "at it") from err
    emb = model.get_input_embeddings()
    if emb is not None and len(tokenizer) > emb.num_embeddings:
        raise BackboneError(f"{where}: the tokenizer has {len(tokenizer)} tokens but the model only "
                            f"{emb.num_embeddings} input embeddings; the tokenizer files do not belong to this model")
    _restore_dropped_ties(model, set(info.get("missing_keys", ())))
    return model, tokenizer


def _restore_dropped_ties(model, missing: set[str]) -> None:
    """Copy a tied source into a target that the checkpoint omitted as "tied" but that the
    model (untied, e.g. ``tie_word_embeddings=False``) did not tie on load: BERT's decoder bias
    is saved only as ``cls.predictions.bias``."""
    import torch

    tied = getattr(model, "_tied_weights_keys", None) or {}
    if not isinstance(tied, dict):
        return
    params = dict(model.named_parameters(remove_duplicate=False))
    for target, source in tied.items():
        if target in missing and source not in missing and target in params and source in params:
            with torch.no_grad():
                params[target].copy_(params[source])
