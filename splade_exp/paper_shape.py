"""Paper-scale experiments at test size: the papers' model shapes on data small enough for a CPU.

A paper experiment file (``conf/experiment/vocab_ablation.yaml`` ...) names a hub backbone and MS
MARCO. :func:`overrides` points one job of it at test-sized data and shrinks its steps, batches
and lengths -- never a model shape or a vocabulary size: the hub backbone is replaced by an
offline build of the same shape with random weights (``backbone=bert_base_shaped``,
``modernbert_base_shaped``), and the unigram head keeps its 100,000 words. The tests train every
paper experiment this way (``tests/test_paper_shape.py``), and ``benchmarks/paper_shape.py``
measures each stage of such a job to size a GPU job.

The data (:func:`write_msmarco`): the synthetic collection (:mod:`splade_exp.data.synthetic`) in
MS MARCO's layout (``collection.tsv``, ``queries.*.tsv``, TREC qrels), read by the real
``data=msmarco`` reader, and a ``general.txt`` that is the synthetic general corpus followed by
lines of pseudo-words (:func:`pseudo_word`), ``n_words`` distinct ones used twice each: a
100,000-word unigram head needs a corpus with that many distinct words, and the WordPiece trainer
needs them to reach 30,522 or 50,368 pieces. The synthetic words are the more frequent, so the
collection's own words are in the head's vocabulary.
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

from splade_exp.hashing import config_hash
from splade_exp.io import build_once

# Pseudo-word syllables: 18 onsets x 6 nuclei = 108; three syllables give 108^3 = 1.26M words.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kl", "st", "tr")
_NUCLEI = ("a", "e", "i", "o", "u", "ai")
_SYLLABLES = tuple(o + n for o in _ONSETS for n in _NUCLEI)
MAX_WORDS = len(_SYLLABLES) ** 3
#: Part of the data directory's key: bump it when the same arguments write different files.
VERSION = 1

# One job per paper experiment, the one that exercises the most of it, and the offline backbone
# of its paper backbone's shape (with its MLM-head norm where the experiment is about it).
_EMLM = ["pretrain.steps=2", "pretrain.batch_size=8", "pretrain.max_length=64", "pretrain.warmup_steps=1",
         "pretrain.val_size=8", "pretrain.val_every_n_steps=0", "pretrain.stats_docs=16", "pretrain.stats_batch_size=8"]
JOBS = {
    "vocab_ablation": ["model=esplade_100k", "backbone=bert_base_shaped", "vocab.corpus=general", *_EMLM],
    "pretrain_study": ["pretrain.corpus=general", "pretrain.repetition=1", "pretrain.lr=1.0e-3",
                       "backbone=bert_base_shaped", "vocab.corpus=general", *_EMLM],
    "head_scale": ["head.k=16", "backbone=modernbert_base_shaped", "head.inflate_norm=2.55"],
}
#: Fine-tuning at test size: 2 steps at batch 8, documents cut at 64 tokens.
FINE_TUNING = ["trainer.max_steps=2", "trainer.batch_size=8", "trainer.warmup_steps=1", "loss.lambda_warmup_steps=2",
               "data.doc_max_length=64"]


def overrides(experiment: str, data_dir: str | Path) -> list[str]:
    """The command line of the paper-shaped job of ``experiment`` on :func:`write_msmarco`'s data.

    ``vocab.corpus=general``: the unigram vocabulary comes from the general corpus, since a few
    hundred documents hold too few distinct words for 100,000 (at paper scale MS MARCO's 8.8M
    passages do)."""
    if experiment not in JOBS:
        raise KeyError(f"no paper-shaped job for experiment {experiment!r}; known: {sorted(JOBS)}")
    data_dir = Path(data_dir)
    return [f"+experiment={experiment}", *JOBS[experiment], f"data.path={data_dir}",
            f"data.general_corpus={data_dir / 'general.txt'}", *FINE_TUNING]


def pseudo_word(i: int) -> str:
    """The ``i``-th pseudo-word: three syllables, the digits of ``i`` in base 108 (so words are
    distinct for distinct ``i``), and a final ``q``, which ends no synthetic word."""
    if not 0 <= i < MAX_WORDS:
        raise ValueError(f"pseudo-word index must lie in [0, {MAX_WORDS}), got {i}")
    n = len(_SYLLABLES)
    return _SYLLABLES[i // (n * n)] + _SYLLABLES[(i // n) % n] + _SYLLABLES[i % n] + "q"


def pseudo_word_lines(n_words: int, repeats: int = 2, words_per_line: int = 48, seed: int = 0) -> list[str]:
    """Lines in which each of ``n_words`` pseudo-words occurs ``repeats`` times, shuffled."""
    tokens = [pseudo_word(i) for i in range(n_words) for _ in range(repeats)]
    random.Random(seed).shuffle(tokens)
    return [" ".join(tokens[i:i + words_per_line]) for i in range(0, len(tokens), words_per_line)]


def write_msmarco(root: str | Path, n_docs: int = 200, n_train_queries: int = 400, n_dev_queries: int = 50,
                  n_words: int = 110_000, seed: int = 0) -> Path:
    """The MS MARCO-layout directory of these arguments under ``root``, written once (its name is
    the hash of the arguments, so a directory is reused only by the call that wrote it)."""
    args = dict(n_docs=n_docs, n_train_queries=n_train_queries, n_dev_queries=n_dev_queries, n_words=n_words,
                seed=seed, version=VERSION)
    out = Path(root) / f"paper-shape-msmarco-{config_hash(args)}"
    build_once(out, lambda tmp: _write(tmp, n_docs, n_train_queries, n_dev_queries, n_words, seed))
    return out


def _write(tmp: Path, n_docs: int, n_train: int, n_dev: int, n_words: int, seed: int) -> None:
    from splade_exp.data.synthetic import generate

    with tempfile.TemporaryDirectory() as scratch:
        src = generate(Path(scratch) / "synthetic", seed=seed, n_docs=n_docs, n_train_queries=n_train,
                       n_dev_queries=n_dev, n_test_queries=0)
        docs = [json.loads(line) for line in (src / "corpus.jsonl").read_text().splitlines()]
        pid = {d["_id"]: str(i) for i, d in enumerate(docs)}
        _lines(tmp / "collection.tsv", (f"{pid[d['_id']]}\t{d['title']}" for d in docs))
        queries = {q["_id"]: q["text"] for q in map(json.loads, (src / "queries.jsonl").read_text().splitlines())}
        qid = {q: str(i) for i, q in enumerate(queries)}
        for split, name in (("train", "train"), ("dev", "dev.small")):
            rows = [r.split("\t") for r in (src / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]]
            judged = dict.fromkeys(q for q, _, _ in rows)
            _lines(tmp / f"queries.{name}.tsv", (f"{qid[q]}\t{queries[q]}" for q in judged))
            _lines(tmp / f"qrels.{name}.tsv", (f"{qid[q]}\t0\t{pid[d]}\t{rel}" for q, d, rel in rows))
        shutil.copyfile(src / "general.txt", tmp / "general.txt")
    with open(tmp / "general.txt", "a", encoding="utf-8") as fh:
        for line in pseudo_word_lines(n_words, seed=seed):
            fh.write(line + "\n")


def _lines(path: Path, lines) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
