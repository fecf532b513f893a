"""Unigram output vocabularies (P1 §4): the top-N words of a corpus, after the tokenizer's own
normalisation and pre-tokenisation (lower-casing, accent stripping, punctuation split, ...).

Selection: count every word of the chosen corpus (:func:`splade_exp.data.masking.split_words`),
drop words without a single alphanumeric character (bare punctuation), rank by frequency
(descending), break ties by the word itself (ascending), keep the first ``vocab.size``.

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
from typing import Iterable

from splade_exp import artifacts
from splade_exp.data.collection import DataError, read_lines
from splade_exp.data.masking import split_words

CORPORA = ("in_domain", "general")


def count_words(tokenizer, texts: Iterable[str]) -> Counter:
    """Frequency of every normalised word of ``texts``."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(split_words(tokenizer, text))
    return counts


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


def corpus_texts(corpus: str, collection) -> list[str]:
    """Texts of a corpus spec: ``in_domain`` (the collection's documents), ``general`` (its general
    corpus) or a path to a text file with one paragraph a line."""
    if corpus == "in_domain":
        return list(collection.corpus.values())
    if corpus == "general":
        return collection.general_texts()
    path = Path(os.path.expanduser(str(corpus)))
    if not path.is_file():
        raise DataError(f"{path}: corpus is not 'in_domain', 'general' or an existing text file")
    return read_lines(path)


def corpus_key(corpus: str) -> dict:
    """What identifies a corpus spec in artifact keys: its name, or a file by its content."""
    if corpus in CORPORA:
        return {"corpus": corpus}
    from splade_exp.fingerprint import fingerprint, normalise_path

    p = normalise_path(corpus)
    return {"corpus": "file", **(fingerprint(p) if p.is_file() else {"missing": str(p)})}


def backbone_key(cfg) -> dict:
    """What identifies the backbone (and so the tokenizer): a built one also by its seed (its data is
    the key's ``data`` part), a local directory by the content of its files rather than its path."""
    from omegaconf import OmegaConf

    from splade_exp.models.backbone import looks_local

    b = OmegaConf.to_container(cfg.backbone, resolve=True)
    key = {"backbone": b}
    name = b.get("name_or_path")
    if not name:
        from splade_exp.models.backbone import BUILD_VERSION

        key["seed"] = int(cfg.seed)
        key["build"] = BUILD_VERSION
    elif looks_local(name) and Path(os.path.expanduser(str(name))).is_dir():
        from splade_exp.fingerprint import directory_fingerprint

        b["name_or_path"] = directory_fingerprint(name, Path(str(cfg.paths.artifacts_dir)) / "fingerprints")
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


def build_unigram_vocab(out: Path, tokenizer, texts: list[str], size: int) -> None:
    counts = count_words(tokenizer, texts)
    write_vocab(out, select_unigrams(counts, size), counts)


def unigram_vocabulary(cfg, tokenizer, collection, artifacts_dir) -> tuple[list[str], dict]:
    """(words in id order, info) of the configured unigram vocabulary, built once per key."""
    v = cfg.vocab
    key = {**backbone_key(cfg), "data": data_key(cfg), "vocab": {"kind": v.kind, "size": int(v.size),
                                                                 **corpus_key(v.corpus)}}
    path = artifacts.artifact(
        artifacts_dir, "vocab", "unigram", key,
        lambda out: build_unigram_vocab(out, tokenizer, corpus_texts(v.corpus, collection), int(v.size)),
    )
    meta = json.loads((path / "meta.json").read_text())
    info = {"vocab.path": str(path), "vocab.distinct_words": meta["distinct_words"], "vocab.coverage": meta["coverage"]}
    return read_vocab(path), info
