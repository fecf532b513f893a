"""Unigram output vocabularies (P1 §4): the top-N words of a corpus, after the tokenizer's own
normalisation and pre-tokenisation (lower-casing, accent stripping, punctuation split, ...).

Selection: count every word of the chosen corpus (:mod:`splade_exp.data.words`; streamed from
``vocab.corpus`` and counted in ``vocab.count_processes`` processes by
:mod:`splade_exp.vocab.counting`), drop words without a single alphanumeric character (bare
punctuation), rank by frequency (descending), break ties by the word itself (ascending), keep
the first ``vocab.size``.

The vocabulary file is an artifact ``vocab/unigram-<hash>/`` keyed by the backbone (its tokenizer
defines "word"), the data (:func:`data_key`: the content of the texts it may count) and the
``vocab`` config; it holds ``vocab.tsv`` (word, count,
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


def corpus_key(corpus: str, text_field: str | None = None, cache_dir: str | os.PathLike | None = None) -> dict:
    """What identifies a corpus spec in artifact keys: its name (``in_domain``, ``general``: their
    texts enter by the key's ``data`` part), or a file by its content, a dataset directory by the
    content of its files; a dataset (Parquet/JSON) also by its text column. Merged into the
    ``vocab``/``pretrain`` parts of keys, so the content sits under ``content`` (a file's ``size``
    beside ``vocab.size`` would replace it). ``cache_dir``: the fingerprint cache
    (:mod:`splade_exp.fingerprint`), so a multi-GB corpus is hashed once per version."""
    from splade_exp.data.corpus import HF_SUFFIXES
    from splade_exp.fingerprint import directory_fingerprint, fingerprint, normalise_path

    if corpus in CORPORA:
        return {"corpus": corpus}
    p = normalise_path(corpus)
    if p.is_dir():
        key = {"corpus": "directory", "content": directory_fingerprint(p, cache_dir)}
    elif p.is_file():
        key = {"corpus": "file", "content": fingerprint(p, cache_dir)}
    else:
        key = {"corpus": "file", "missing": str(p)}
    if p.is_dir() or p.suffix.lower() in HF_SUFFIXES:
        key["text_field"] = text_field
    return key


def data_key(cfg) -> dict:
    """The data part of the text artifacts' keys (built backbone, unigram vocabulary, EMLM): the data
    source's options and the content of the files they read texts from, the documents and the
    general corpus (:func:`splade_exp.data.identity.data_identity`). Judgments are not part of it:
    correcting a qrels file does not rebuild them."""
    from splade_exp.data.identity import TEXT_ROLES, data_identity

    return data_identity(cfg.data, cfg.paths.artifacts_dir, roles=TEXT_ROLES)


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


def unigram_key(vocab, backbone_id: dict, data_id: dict, cache_dir=None) -> dict:
    """What identifies a unigram vocabulary artifact (``cache_dir``: the fingerprint cache)."""
    corpus = corpus_key(vocab.corpus, vocab.get("text_field", "text"), cache_dir)
    return {**backbone_id, "data": data_id, "vocab": {"kind": vocab.kind, "size": int(vocab.size), **corpus}}


def unigram_vocabulary(vocab, backbone_id: dict, data_id: dict, tokenizer, collection,
                       artifacts_dir) -> tuple[list[str], dict]:
    """(words in id order, info) of the ``vocab`` config's unigram vocabulary, built once per key.
    ``backbone_id``/``data_id``: the backbone and data parts of the key
    (:meth:`splade_exp.models.backbones.Backbone.key`, :func:`data_key`)."""
    from splade_exp.data.corpus import text_source

    v = vocab
    text_field = v.get("text_field", "text")
    key = unigram_key(vocab, backbone_id, data_id, Path(str(artifacts_dir)) / "fingerprints")

    def build(out: Path) -> None:
        source = text_source(v.corpus, collection, text_field, artifacts_dir, key="vocab.corpus")
        build_unigram_vocab(out, tokenizer, source, int(v.size), v.get("count_processes"))

    path = artifacts.artifact(artifacts_dir, "vocab", "unigram", key, build)
    meta = json.loads((path / "meta.json").read_text())
    info = {"vocab.path": str(path), "vocab.distinct_words": meta["distinct_words"], "vocab.coverage": meta["coverage"]}
    return read_vocab(path), info
