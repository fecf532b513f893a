"""Unigram output vocabularies (P1 §4): the top-N words of a corpus, after the tokenizer's own
normalisation and pre-tokenisation (lower-casing, accent stripping, punctuation split, ...).

Selection: count every word of the chosen corpus (:mod:`splade_exp.data.words`; streamed from
``vocab.corpus`` and counted in ``vocab.count_processes`` processes by
:mod:`splade_exp.vocab.counting`), drop words without a single alphanumeric character (bare
punctuation), rank by frequency (descending), break ties by the word itself (ascending), keep
the first ``vocab.size``.

The vocabulary file is an artifact ``vocab/unigram-<hash>/`` keyed by the backbone (its tokenizer
defines "word"), the data source and the ``vocab`` config; it holds ``vocab.tsv`` (word, count,
one per line, in id order) and ``meta.json`` (distinct words, corpus tokens, coverage).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from splade_exp import artifacts
from splade_exp.vocab.counting import count_words

CORPORA = ("in_domain", "general")


def select_unigrams(counts: Counter, size: int) -> list[str]:
    """The ``size`` most frequent words with at least one alphanumeric character; ties by word."""
    if size <= 0:
        raise ValueError(f"vocab.size must be positive, got {size}")
    ranked = sorted((w for w in counts if any(ch.isalnum() for ch in w)), key=lambda w: (-counts[w], w))
    if size > len(ranked):
        raise ValueError(
            f"vocab.size={size} is larger than the number of distinct words in the corpus "
            f"({len(ranked)}); lower vocab.size or use a larger vocab.corpus"
        )
    return ranked[:size]


def corpus_key(corpus: str, text_field: str | None = None) -> dict:
    """What identifies a corpus spec in artifact keys: a file by its path, size and mtime; a
    dataset directory by those of its files; a dataset (Parquet/JSON) also by its text column.
    Merged into the ``vocab``/``pretrain`` parts of keys, so no field may be named like a config
    key (the file size is ``bytes``: as ``size`` it replaced ``vocab.size`` in the unigram key)."""
    from splade_exp.data.corpus import HF_SUFFIXES

    if corpus in CORPORA:
        return {"corpus": corpus}
    p = Path(os.path.expanduser(str(corpus))).resolve()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        key = {"corpus": str(p), "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
    else:
        st = p.stat() if p.exists() else None
        key = {"corpus": str(p), "bytes": st.st_size if st else None, "mtime_ns": st.st_mtime_ns if st else None}
    if p.is_dir() or p.suffix.lower() in HF_SUFFIXES:
        key["text_field"] = text_field
    return key


def backbone_key(cfg) -> dict:
    """What identifies the backbone (and so the tokenizer): a built one also by its data and seed."""
    from omegaconf import OmegaConf

    b = OmegaConf.to_container(cfg.backbone, resolve=True)
    key = {"backbone": b}
    if not b.get("name_or_path"):
        from splade_exp.models.backbone import BUILD_VERSION

        key["seed"] = int(cfg.seed)
        key["build"] = BUILD_VERSION
    return key


def data_key(cfg) -> dict:
    from omegaconf import OmegaConf

    return {"source": OmegaConf.to_container(cfg.data.source, resolve=True),
            "general_corpus": cfg.data.general_corpus}


def write_vocab(out: Path, words: list[str], counts: Counter) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "vocab.tsv", "w", encoding="utf-8") as fh:
        for w in words:
            fh.write(f"{w}\t{counts[w]}\n")
    total = sum(counts.values())
    meta = {"size": len(words), "distinct_words": len(counts), "corpus_tokens": total,
            "coverage": sum(counts[w] for w in words) / total if total else 0.0}
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_vocab(path: str | Path) -> list[str]:
    """Words in id order from ``vocab.tsv`` (word<TAB>count) or a ``vocab.txt`` (one word a line)."""
    path = Path(path)
    if path.is_dir():
        path = path / "vocab.tsv" if (path / "vocab.tsv").exists() else path / "vocab.txt"
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n").split("\t")[0] for line in fh if line.strip()]


def build_unigram_vocab(out: Path, tokenizer, source, size: int, processes: int | None = None) -> None:
    counts = count_words(tokenizer, source, processes)
    write_vocab(out, select_unigrams(counts, size), counts)


def unigram_key(vocab, backbone_id: dict, data_id: dict) -> dict:
    """What identifies a unigram vocabulary artifact."""
    return {**backbone_id, "data": data_id, "vocab": {"kind": vocab.kind, "size": int(vocab.size),
                                                      **corpus_key(vocab.corpus, vocab.get("text_field", "text"))}}


def unigram_vocabulary(vocab, backbone_id: dict, data_id: dict, tokenizer, collection,
                       artifacts_dir) -> tuple[list[str], dict]:
    """(words in id order, info) of the ``vocab`` config's unigram vocabulary, built once per key.
    ``backbone_id``/``data_id``: the backbone and data parts of the key (:func:`backbone_key`,
    :func:`data_key`)."""
    from splade_exp.data.corpus import text_source

    v = vocab
    text_field = v.get("text_field", "text")
    key = unigram_key(vocab, backbone_id, data_id)

    def build(out: Path) -> None:
        source = text_source(v.corpus, collection, text_field, artifacts_dir, key="vocab.corpus")
        build_unigram_vocab(out, tokenizer, source, int(v.size), v.get("count_processes"))

    path = artifacts.artifact(artifacts_dir, "vocab", "unigram", key, build)
    meta = json.loads((path / "meta.json").read_text())
    info = {"vocab.path": str(path), "vocab.distinct_words": meta["distinct_words"], "vocab.coverage": meta["coverage"]}
    return read_vocab(path), info
