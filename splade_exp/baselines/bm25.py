"""BM25 with bm25s: its effectiveness and its FLOPS on the same collection.

FLOPS uses the same formula as the learned models, on BM25's supports: the distinct analysed
(stemmed, stop-word-filtered) terms of each query and document.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from splade_exp import metrics as M


def _analyse(texts: list[str], stemmer) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)


def _support(token_lists: list[list[str]], vocab: dict[str, int]) -> sp.csr_matrix:
    rows, cols = [], []
    for i, toks in enumerate(token_lists):
        for t in set(toks):
            if t in vocab:
                rows.append(i)
                cols.append(vocab[t])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(token_lists), len(vocab)))


def bm25_row(collection, split: str, k1: float = 1.2, b: float = 0.75, k: int = 1000) -> dict:
    return bm25_evaluation(collection, split, k1, b, k)[0]


def bm25_evaluation(collection, split: str, k1: float = 1.2, b: float = 0.75, k: int = 1000):
    """(results row, per-query metrics frame, run) of BM25 on ``split``."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    qrels = collection.split(split)
    doc_ids = list(collection.corpus)
    query_ids = [qid for qid in qrels if qid in collection.queries]
    doc_tokens = _analyse([collection.corpus[i] for i in doc_ids], stemmer)
    query_tokens = _analyse([collection.queries[i] for i in query_ids], stemmer)
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(doc_tokens, show_progress=False)
    k = min(k, len(doc_ids))
    # bm25s cannot score an empty query; those get an empty run (scored 0 by the metrics).
    run: dict[str, dict[str, float]] = {qid: {} for qid in query_ids}
    nonempty = [i for i, t in enumerate(query_tokens) if t]
    if nonempty:
        res, scores = retriever.retrieve([query_tokens[i] for i in nonempty], k=k, show_progress=False)
        for row, i in enumerate(nonempty):
            run[query_ids[i]] = {doc_ids[j]: float(s) for j, s in zip(res[row], scores[row]) if s > 0}
    vocab = {t: j for j, t in enumerate(sorted({t for toks in doc_tokens for t in toks}))}
    dq, dd = _support(query_tokens, vocab), _support(doc_tokens, vocab)
    per = M.perquery(qrels, run)
    row = {"qk": 0, "dk": 0, **M.aggregate(per), "flops": M.flops_cost(dq, dd),
           "l0_q": M.mean_l0(dq), "l0_d": M.mean_l0(dd), **M.posting_stats(dd)}
    return row, per.assign(qk=0, dk=0), run
