"""The model directory of a finished training run: ``runs/<run_id>/model/``.

What a run trained, in files other tools read::

    config.json  model.safetensors         the fine-tuned masked LM (AutoModelForMaskedLM)
    tokenizer.json  tokenizer_config.json  its tokenizer (input side: always the backbone's WordPieces)
    splade_exp.json                        metadata: run id, pooling, head k, vocabulary, lengths, config
    WordPiece head (output vocabulary = input vocabulary):
      modules.json  sentence_bert_config.json  config_sentence_transformers.json  1_SpladePooling/
                                           sentence-transformers' SparseEncoder (st_files.py)
    unigram head (output vocabulary = |U| words, input vocabulary = WordPieces):
      unigram_head/model.safetensors       the trained projection: ``weight`` (|U| x H), ``bias`` (|U|)
      unigram_head/vocab.tsv               the words in id order (word<TAB>corpus count)
      unigram_head/splade_exp_unigram.py   a SparseEncoder module for that head (trust_remote_code)
      modules.json ...                     as above, module 0 being that module

Why the unigram head lives beside the masked LM and not in it: the MLM's input embeddings and
its output layer share one ``config.vocab_size``; a |U|-row output layer under a |WP|-row
embedding is a checkpoint ``from_pretrained`` refuses (or silently reinitialises with
``ignore_mismatched_sizes``). So the MLM is saved as a standard one whose output layer is tied to
its input embeddings (``tie_word_embeddings: true``; nothing extra stored, no missing key on load:
``AutoModelForMaskedLM.from_pretrained(dir)`` gives the fine-tuned trunk and a WordPiece MLM
head that SPLADE did not train), and the trained head is one extra safetensors file that
:meth:`ModelDir.attach_head` (the pipeline, ``load_encoder``) and the SparseEncoder module put on
top of the trunk.

For a WordPiece head the decoder goes back into the MLM (``SpladeEncoder.export_masked_lm``) and
is saved untied. Parameters that the architecture ties to the decoder's (BERT's
``cls.predictions.bias`` is the decoder's bias object once it is put back) are saved as copies
of equal value: ``save_pretrained`` writes a shared tensor once, under one name, and an untied
model loaded by plain ``from_pretrained`` would then start the other name from its initial value.

Loading a model directory as a backbone (``backbone=local backbone.name_or_path=<dir>``) keeps its
head as trained under ``init=pretrained`` (:meth:`ModelDir.keeps_head`), and never divides it by
``head.k`` again when the run that wrote it already did.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from splade_exp.errors import SpladeExpError
from splade_exp.io import atomic_dir, write_json

log = logging.getLogger(__name__)

METADATA = "splade_exp.json"
UNIGRAM_HEAD = "unigram_head"
HEAD_WEIGHTS = "model.safetensors"
HEAD_VOCAB = "vocab.tsv"
#: Bumped when the layout changes in a way an older reader would misread.
FORMAT = 1


class ModelDirError(SpladeExpError, ValueError):
    """A model directory that cannot be used as asked; the message names the path and what to do."""


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDir:
    """A model directory written by :func:`write_model_dir` and its metadata."""

    path: Path
    meta: dict

    @classmethod
    def of(cls, name_or_path) -> "ModelDir | None":
        """The model directory at ``name_or_path`` when it is one (it holds ``splade_exp.json``), else None."""
        if not name_or_path:
            return None
        path = Path(os.path.expanduser(str(name_or_path)))
        return cls.read(path) if (path / METADATA).is_file() else None

    @classmethod
    def read(cls, path) -> "ModelDir":
        path = Path(os.path.expanduser(str(path)))
        file = path / METADATA
        if not file.is_file():
            raise ModelDirError(f"{path}: no {METADATA}, so not a model directory written by splade-exp "
                                "(a finished training run writes runs/<run_id>/model/)")
        try:
            meta = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelDirError(f"{file}: unreadable metadata ({err}); export the run again") from err
        if not isinstance(meta, dict) or meta.get("format", 0) > FORMAT:
            raise ModelDirError(f"{file}: format {meta.get('format') if isinstance(meta, dict) else '?'} is newer "
                                f"than this splade-exp reads ({FORMAT}); upgrade splade-exp")
        return cls(path, meta)

    @property
    def pooling(self) -> str:
        return self.meta["pooling"]

    @property
    def vocab_kind(self) -> str:
        return self.meta["vocab"]["kind"]

    @property
    def head_scaled(self) -> bool:
        """True when the run that wrote it divided its head by ``head.k`` != 1."""
        head = self.meta.get("head", {})
        return bool(head.get("applied")) and float(head.get("k", 1)) != 1

    def check_pooling(self, pooling: str) -> None:
        if pooling != self.pooling:
            raise ModelDirError(f"{self.path}: this model was trained with head.pooling={self.pooling}, the config "
                                f"says head.pooling={pooling}; pass head.pooling={self.pooling}")

    def keeps_head(self, init_kind: str, pretrain_enabled: bool) -> bool:
        """Whether a run on this backbone keeps the directory's output head as trained.

        ``init=pretrained`` means "the backbone's head as trained"; for a unigram directory that
        is its unigram head, whatever ``vocab`` says (the words come with the head). EMLM
        pretraining of a WordPiece head goes through the usual path (the head is the MLM's own);
        of a carried unigram head it is refused rather than keyed on a vocabulary it did not build.
        """
        if init_kind != "pretrained":
            return False
        if self.vocab_kind == "unigram":
            if pretrain_enabled:
                raise ModelDirError(f"{self.path}: EMLM pretraining of the unigram head this directory carries is not "
                                    "supported; use pretrain=none, or init=esplade/random for a new head")
            return True
        return not pretrain_enabled

    def output_words(self) -> list[str]:
        from splade_exp.vocab.unigram import read_vocab

        return read_vocab(self.path / UNIGRAM_HEAD / HEAD_VOCAB)

    def unigram_decoder(self) -> nn.Linear:
        from safetensors.torch import load_file

        file = self.path / UNIGRAM_HEAD / HEAD_WEIGHTS
        try:
            state = load_file(str(file))
        except Exception as err:  # missing or damaged file
            raise ModelDirError(f"{file}: cannot read the unigram head ({type(err).__name__}: {err}); "
                                "export the run again") from err
        weight, bias = state["weight"], state.get("bias")
        decoder = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            decoder.weight.copy_(weight)
            if bias is not None:
                decoder.bias.copy_(bias)
        return decoder

    def attach_head(self, encoder) -> tuple:
        """Put the directory's output head on ``encoder`` (loaded from this directory); (encoder, info)."""
        info: dict = {}
        if self.vocab_kind == "unigram":
            old = encoder.decoder.weight
            decoder = self.unigram_decoder().to(device=old.device, dtype=old.dtype)
            if decoder.in_features != old.shape[1]:
                raise ModelDirError(f"{self.path}: the unigram head takes {decoder.in_features} features but the "
                                    f"model's head transform gives {old.shape[1]}; the files do not belong together")
            encoder.decoder = decoder
            info["vocab.path"] = str(self.path / UNIGRAM_HEAD)
            log.info("keeping the unigram output head of %s (%d words)", self.path, encoder.vocab_size)
        info["vocab_size"] = encoder.vocab_size
        return encoder, info

    def terms(self, tokenizer) -> list[str]:
        """The output terms in id order: the head's words, or the tokenizer's pieces."""
        if self.vocab_kind == "unigram":
            return self.output_words()
        return tokenizer.convert_ids_to_tokens(list(range(self.meta["vocab"]["size"])))


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _untied(mlm: nn.Module, decoder: nn.Module):
    """Give every parameter shared between ``decoder`` and another module of ``mlm`` its own copy
    (same values) for the duration of the block; the shared objects are put back afterwards."""
    params = {id(p) for p in decoder.parameters()}
    inside = {id(m) for m in decoder.modules()}
    swapped = []
    for module in mlm.modules():
        if id(module) in inside:
            continue
        for attr, p in list(module.named_parameters(recurse=False)):
            if id(p) in params:
                swapped.append((module, attr, p))
                setattr(module, attr, nn.Parameter(p.detach().clone(), requires_grad=False))
    try:
        yield
    finally:
        for module, attr, p in swapped:
            setattr(module, attr, p)


@contextlib.contextmanager
def masked_lm_to_save(encoder, unigram: bool):
    """The encoder's masked LM in the form it is saved in (see the module docstring); the encoder
    is as before when the block ends (its trunk again ends at the head's transform)."""
    mlm = encoder.mlm
    config = getattr(mlm, "config", None)
    tie = getattr(config, "tie_word_embeddings", None)
    try:
        if unigram:
            emb = mlm.get_input_embeddings()
            slot = nn.Linear(encoder.decoder.in_features, emb.num_embeddings, bias=encoder.decoder.bias is not None)
            slot.to(device=emb.weight.device, dtype=emb.weight.dtype)
            mlm.set_submodule(encoder.decoder_path, slot)
            config.tie_word_embeddings = True
            mlm.tie_weights()
            yield mlm
        else:
            encoder.export_masked_lm()
            with _untied(mlm, encoder.decoder):
                yield mlm
    finally:
        encoder.detach_decoder()
        if config is not None:
            config.tie_word_embeddings = tie


def _save_unigram_head(out: Path, decoder: nn.Linear, vocab_file: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {"weight": decoder.weight.detach().cpu().contiguous()}
    if decoder.bias is not None:
        state["bias"] = decoder.bias.detach().cpu().contiguous()
    save_file(state, str(out / HEAD_WEIGHTS), metadata={"format": "pt"})
    shutil.copyfile(vocab_file, out / HEAD_VOCAB)


def write_model_dir(path, encoder, tokenizer, metadata: dict, vocab_dir=None) -> Path:
    """Write the model directory ``path`` atomically (replacing an older one); returns ``path``.

    ``metadata`` is :func:`run_metadata`'s dict; ``vocab_dir`` the folder whose ``vocab.tsv``
    holds the output words of a unigram head (None for a WordPiece head).
    """
    from splade_exp.export.st_files import write_sparse_encoder_files

    path = Path(path)
    unigram = vocab_dir is not None
    vocab_file = Path(vocab_dir) / HEAD_VOCAB if unigram else None
    if unigram:
        from splade_exp.vocab.unigram import read_vocab

        n = len(read_vocab(vocab_file))
        if n != encoder.vocab_size:
            raise ModelDirError(f"{vocab_file}: {n} words but the head has {encoder.vocab_size} rows")
    meta = {**metadata, "format": FORMAT,
            "vocab": {"kind": "unigram" if unigram else "wordpiece", "size": encoder.vocab_size,
                      "file": f"{UNIGRAM_HEAD}/{HEAD_VOCAB}" if unigram else None}}

    def build(tmp: Path) -> None:
        with masked_lm_to_save(encoder, unigram) as mlm:
            mlm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if unigram:
            _save_unigram_head(tmp / UNIGRAM_HEAD, encoder.decoder, vocab_file)
        write_sparse_encoder_files(tmp, pooling=meta["pooling"], vocab_size=encoder.vocab_size,
                                   max_seq_length=int(meta["max_length"]["document"]), unigram=unigram)
        write_json(tmp / METADATA, meta)
        _readable(tmp)

    _replace_dir(path, build)
    log.info("wrote the model directory %s", path)
    return path


def _readable(root: Path) -> None:
    """Give the files under ``root`` the mode a plain ``open()`` would (safetensors writes 0600):
    runs roots are often shared by a group."""
    mask = os.umask(0)
    os.umask(mask)
    for p in root.rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _replace_dir(path: Path, build) -> None:
    """``atomic_dir`` that also replaces an existing ``path``: the old directory is moved aside
    (a dot-name, like every temporary) until the new one is in place, and put back if the build
    fails, so ``path`` is only ever missing between two renames, never partial."""
    if not path.exists():
        with atomic_dir(path) as tmp:
            build(tmp)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=path.parent))
    old.rmdir()
    os.rename(path, old)
    try:
        with atomic_dir(path) as tmp:
            build(tmp)
    except BaseException:
        if not path.exists():
            os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _job_overrides() -> list[str] | None:
    """The command-line overrides of the Hydra job running now (None outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return [str(o) for o in HydraConfig.get().overrides.task]
    except Exception:  # not inside a Hydra job (a direct run(cfg) call)
        return None


def run_metadata(cfg, rid: str, step: int, info: dict, results: Path) -> dict:
    """What ``splade_exp.json`` records about the run that trained the model (all but the vocabulary,
    which :func:`write_model_dir` adds from the head it writes)."""
    import platform

    import transformers

    import splade_exp
    from splade_exp.export.license import backbone_license
    from splade_exp.hashing import drop_keys

    return {
        "run_id": rid,
        "sweep": cfg.sweep,
        "model": cfg.model or "",
        "step": int(step),
        "pooling": cfg.head.pooling,
        "head": {"k": float(cfg.head.k), "scale_bias": bool(cfg.head.scale_bias),
                 "applied": bool(info.get("head.k_applied"))},
        "max_length": {"query": int(cfg.data.query_max_length), "document": int(cfg.data.doc_max_length)},
        "backbone": {"name": cfg.backbone.name, "name_or_path": cfg.backbone.get("name_or_path"),
                     "license": backbone_license(cfg.backbone.get("name_or_path"))},
        "data": {"name": cfg.data.name, "eval_split": cfg.data.eval_split},
        "results": str(results),
        "overrides": _job_overrides(),
        "config": drop_keys(cfg, ("hydra",)),
        "versions": {"splade_exp": splade_exp.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
    }
