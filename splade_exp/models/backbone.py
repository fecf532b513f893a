"""Backbone models: a small BERT built from a config with a WordPiece tokenizer trained on the data
(offline default), or any ``AutoModelForMaskedLM`` from a local directory or a hub name. Which one
a run uses, and under what artifact key, is its builder's (:mod:`splade_exp.models.backbones`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

from splade_exp.errors import SpladeExpError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class BackboneError(SpladeExpError, ValueError):
    """A backbone that cannot be loaded; the message names the path or config key."""


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on ``texts``: the same in every process.

    ``tokenizers``' ``WordPieceTrainer`` (BPE merges over words whose non-initial characters
    carry the ``##`` prefix) breaks ties between equally frequent merges by token ids that it hands
    out to the ``##`` characters in hash-map order, different in every process; on the synthetic
    collection two builds of the 1,000-piece vocabulary differed in one piece (and 144 ids), so
    the same config trained a different model. Here every non-initial character is written as a
    private-use character instead (``"word"`` -> ``"w"`` + ``P(o) P(r) P(d)``) and the plain BPE
    trainer runs on that: its alphabet is sorted by code point, so ties break by characters and
    the merges do not depend on the process. Pieces are mapped back (a piece that starts with a
    private-use character is a ``##`` piece), giving the ``WordPieceTrainer``'s vocabulary up to
    those ties, and numbered specials first, then pieces in sorted order.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    texts = texts if isinstance(texts, (list, tuple)) else list(texts)
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    def words(text: str) -> list[str]:
        return [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]

    # Like the WordPiece trainer, every character seen in a word is in the alphabet on its own. The
    # trainer needs the alphabet before it starts, so the texts are split twice rather than every
    # word of the corpus held in memory (one split of the demo's 4,500 texts takes 0.3 s of 1.1 s).
    alphabet = sorted({c for text in texts for w in words(text) for c in w})
    private = _PrivateCharacters(alphabet)
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=alphabet, show_progress=False)
    bpe.train_from_iterator(
        (" ".join(w[0] + private.encode(w[1:]) for w in words(text)) for text in texts), trainer=trainer
    )
    pieces = sorted(private.decode(p) for p in set(bpe.get_vocab()) - set(SPECIAL_TOKENS))

    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(SPECIAL_TOKENS + pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
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


class _PrivateCharacters:
    """A one-to-one map from the characters of ``alphabet`` to private-use code points (plane 15),
    in code-point order. BERT's normalizer drops private-use characters (category Co) from the
    texts, so the alphabet never holds one."""

    BASE = 0xF0000

    def __init__(self, alphabet: list[str]) -> None:
        if len(alphabet) > 0xFFFE or any(self.BASE <= ord(c) < self.BASE + 0xFFFE for c in alphabet):
            raise ValueError("train_wordpiece: more than 65,534 distinct characters, or private-use ones "
                             "left in the normalised texts")
        self._to = {c: chr(self.BASE + i) for i, c in enumerate(alphabet)}
        self._from = {v: k for k, v in self._to.items()}

    def encode(self, s: str) -> str:
        return "".join(self._to[c] for c in s)

    def decode(self, piece: str) -> str:
        """A trained piece back in WordPiece form: ``##`` + characters when it starts inside a word."""
        if piece[0] in self._from:
            return "##" + "".join(self._from[c] for c in piece)
        return piece[0] + "".join(self._from[c] for c in piece[1:])


def build_bert(tokenizer: PreTrainedTokenizerFast, **config) -> BertForMaskedLM:
    """A randomly initialised BERT masked LM sized by ``config`` (BertConfig keyword arguments)."""
    cfg = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **config)
    return BertForMaskedLM(cfg)


def build_masked_lm(tokenizer: PreTrainedTokenizerFast, model_type: str = "bert", **config):
    """A randomly initialised masked LM of any ``transformers`` model type (``bert``,
    ``modernbert``, ...) sized by ``config`` (its config class's keyword arguments), with the
    tokenizer's vocabulary and special-token ids. ``bert`` builds exactly :func:`build_bert`'s model."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    if model_type == "bert":
        return build_bert(tokenizer, **config)
    specials = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id") for name in ("pad", "cls", "sep")}
    specials.update(bos_token_id=specials["cls_token_id"], eos_token_id=specials["sep_token_id"])
    cfg = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **specials, **config)
    return AutoModelForMaskedLM.from_config(cfg)


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
